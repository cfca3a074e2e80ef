import assert from "node:assert/strict";
import { DriverOptionError } from "../../../drivers/driver.js";
import {
  DEFAULT_TIMEOUT_MS,
  kubernetesSettings,
  parseDuration,
  parseTolerations,
} from "../../../drivers/kubernetes/options.js";
import { driverFactory } from "../../../drivers/registry.js";

function create(driverOpts: Record<string, string>) {
  return driverFactory("kubernetes").create({
    name: "kube0",
    endpoint: "",
    driverOpts,
    platforms: [],
    flags: [],
    env: {},
  });
}

function refuses(driverOpts: Record<string, string>, message: RegExp) {
  assert.throws(
    () => create(driverOpts),
    (err: Error) => err instanceof DriverOptionError && message.test(err.message),
  );
}

describe("kubernetes driver options", () => {
  it("is registered as a driver create may use", () => {
    const f = driverFactory("kubernetes");
    assert.equal(f.name, "kubernetes");
    assert.equal(f.allowsInstances, true);
  });

  it("validates options without reading a kubeconfig (the node is created before any cluster is asked)", () => {
    assert.equal(create({ namespace: "builds", replicas: "3" }).factory.name, "kubernetes");
  });

  it("refuses an unknown option, naming the valid ones", () => {
    refuses(
      { persistence: "yes" },
      /invalid driver option "persistence" for kubernetes driver: valid options are image, namespace, replicas, requests\.cpu/,
    );
  });

  it("defaults to one replica, sticky load balancing, a 120s timeout and no default load", () => {
    const s = kubernetesSettings({});
    assert.equal(s.replicas, 1);
    assert.equal(s.loadBalance, "sticky");
    assert.equal(s.timeoutMs, DEFAULT_TIMEOUT_MS);
    assert.equal(s.timeoutMs, 120_000);
    assert.equal(s.defaultLoad, false);
    assert.equal(s.namespace, undefined);
  });

  it("refuses a replica count that is not a positive whole number", () => {
    refuses({ replicas: "0" }, /replicas: expected a whole number of pods, at least 1/);
    refuses({ replicas: "two" }, /replicas/);
  });

  it("refuses a namespace Kubernetes would not accept", () => {
    refuses({ namespace: "Builds_1" }, /namespace: expected a namespace name/);
  });

  it("accepts Kubernetes quantities for requests and limits and refuses others", () => {
    const s = kubernetesSettings({
      "requests.cpu": "500m",
      "requests.memory": "512Mi",
      "limits.memory": "4G",
      "limits.ephemeral-storage": "20Gi",
    });
    assert.deepEqual(s.requests, { cpu: "500m", memory: "512Mi" });
    assert.deepEqual(s.limits, { memory: "4G", "ephemeral-storage": "20Gi" });
    create({ "limits.cpu": "2", "requests.cpu": "0.5" });
    refuses({ "limits.memory": "4 gigs" }, /limits\.memory: expected a Kubernetes quantity/);
    refuses({ "requests.cpu": "2mb" }, /requests\.cpu/);
  });

  it("reads nodeselector, labels and annotations as k=v lists", () => {
    const s = kubernetesSettings({
      nodeselector: "kubernetes.io/arch=arm64,pool=builders",
      labels: "team=ci",
      annotations: "example.com/owner=ci,note=",
    });
    assert.deepEqual(s.nodeSelector, { "kubernetes.io/arch": "arm64", pool: "builders" });
    assert.deepEqual(s.labels, { team: "ci" });
    assert.deepEqual(s.annotations, { "example.com/owner": "ci", note: "" });
    refuses({ nodeselector: "arm64" }, /nodeselector: expected a list of key=value pairs/);
  });

  it("reads ;-separated tolerations with each field Kubernetes has", () => {
    assert.deepEqual(
      parseTolerations(
        "key=foo,value=bar;key=foo2,operator=exists;key=foo3,effect=NoSchedule,tolerationSeconds=30",
      ),
      [
        { key: "foo", value: "bar" },
        { key: "foo2", operator: "Exists" },
        { key: "foo3", effect: "NoSchedule", tolerationSeconds: 30 },
      ],
    );
  });

  it("refuses a toleration with an unknown field, operator or effect", () => {
    refuses(
      { tolerations: "key=a,colour=red" },
      /toleration fields key, operator, value, effect, tolerationSeconds, not "colour"/,
    );
    refuses({ tolerations: "key=a,operator=Maybe" }, /operator Exists or Equal/);
    refuses({ tolerations: "key=a,effect=Evict" }, /effect NoSchedule, PreferNoSchedule or NoExecute/);
  });

  it("accepts only sticky or random load balancing", () => {
    assert.equal(kubernetesSettings({ loadbalance: "random" }).loadBalance, "random");
    refuses({ loadbalance: "round-robin" }, /loadbalance: expected sticky or random/);
  });

  it("reads the timeout as a Go duration", () => {
    assert.equal(parseDuration("120s"), 120_000);
    assert.equal(parseDuration("1m30s"), 90_000);
    assert.equal(parseDuration("500ms"), 500);
    refuses({ timeout: "120" }, /timeout: expected a duration such as 120s/);
    refuses({ timeout: "2 minutes" }, /timeout/);
  });

  it("passes env.NAME options to the engine with NAME's case kept", () => {
    assert.deepEqual(kubernetesSettings({ "env.HTTP_PROXY": "http://proxy:3128" }).env, [
      { name: "HTTP_PROXY", value: "http://proxy:3128" },
    ]);
  });
});
