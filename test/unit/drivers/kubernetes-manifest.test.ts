import assert from "node:assert/strict";
import {
  configMapName,
  ENGINE_CONFIG_DIR,
  ENGINE_CONFIG_KEY,
  ENGINE_STATE_DIR,
  type EngineDeploymentSpec,
  engineObjects,
  PLATFORM_ANNOTATION,
} from "../../../drivers/kubernetes/manifest.js";
import { kubernetesSettings } from "../../../drivers/kubernetes/options.js";

function spec(
  opts: Record<string, string> = {},
  extra: Partial<EngineDeploymentSpec> = {},
): EngineDeploymentSpec {
  return {
    name: "kube0",
    namespace: "builds",
    image: "registry.example/kiln/engine:1",
    localImage: false,
    flags: [],
    platforms: [],
    settings: kubernetesSettings(opts),
    ...extra,
  };
}

describe("kubernetes engine Deployment manifest", () => {
  it("names the Deployment after the node and selects its pods by an app label", () => {
    const { deployment } = engineObjects(spec());
    assert.equal(deployment.metadata.name, "kube0");
    assert.equal(deployment.metadata.namespace, "builds");
    assert.deepEqual(deployment.spec.selector.matchLabels, { app: "kube0" });
    assert.equal(deployment.spec.template.metadata.labels?.app, "kube0");
  });

  it("runs kilnd privileged with its state in an emptyDir and the engine flags after --root", () => {
    const { deployment } = engineObjects(spec({}, { flags: ["--debug"] }));
    const [c] = deployment.spec.template.spec.containers;
    assert.equal(c!.image, "registry.example/kiln/engine:1");
    assert.deepEqual(c!.args, ["--root", ENGINE_STATE_DIR, "--debug"]);
    assert.deepEqual(c!.securityContext, { privileged: true });
    assert.deepEqual(c!.readinessProbe?.exec.command, ["kilnd", "dial-stdio"]);
    assert.deepEqual(c!.volumeMounts, [{ name: "state", mountPath: ENGINE_STATE_DIR }]);
    assert.deepEqual(deployment.spec.template.spec.volumes, [{ name: "state", emptyDir: {} }]);
  });

  it("sets the replica count", () => {
    assert.equal(engineObjects(spec({ replicas: "3" })).deployment.spec.replicas, 3);
  });

  it("never pulls an engine image that exists only in the nodes' local stores", () => {
    const local = engineObjects(spec({}, { localImage: true })).deployment;
    const pulled = engineObjects(spec()).deployment;
    assert.equal(local.spec.template.spec.containers[0]!.imagePullPolicy, "IfNotPresent");
    assert.equal(pulled.spec.template.spec.containers[0]!.imagePullPolicy, undefined);
  });

  it("carries requests and limits into the container's resources, and none when none are given", () => {
    const { deployment } = engineObjects(spec({ "requests.cpu": "500m", "limits.memory": "2Gi" }));
    assert.deepEqual(deployment.spec.template.spec.containers[0]!.resources, {
      requests: { cpu: "500m" },
      limits: { memory: "2Gi" },
    });
    assert.equal(engineObjects(spec()).deployment.spec.template.spec.containers[0]!.resources, undefined);
  });

  it("places pods with the node selector, tolerations, service account and scheduler given", () => {
    const pod = engineObjects(
      spec({
        nodeselector: "kubernetes.io/arch=arm64",
        tolerations: "key=dedicated,operator=Equal,value=builds,effect=NoSchedule",
        serviceaccount: "kiln",
        schedulername: "batch",
      }),
    ).deployment.spec.template.spec;
    assert.deepEqual(pod.nodeSelector, { "kubernetes.io/arch": "arm64" });
    assert.deepEqual(pod.tolerations, [
      { key: "dedicated", operator: "Equal", value: "builds", effect: "NoSchedule" },
    ]);
    assert.equal(pod.serviceAccountName, "kiln");
    assert.equal(pod.schedulerName, "batch");
  });

  it("puts extra labels on the Deployment and pods, but never lets one replace the selector's", () => {
    const { deployment } = engineObjects(spec({ labels: "team=ci,app=other" }));
    assert.deepEqual(deployment.metadata.labels, { team: "ci", app: "kube0" });
    assert.deepEqual(deployment.spec.template.metadata.labels, { team: "ci", app: "kube0" });
  });

  it("annotates the Deployment and pods with extra annotations and the node's platforms", () => {
    const { deployment } = engineObjects(
      spec(
        { annotations: "example.com/owner=ci" },
        {
          platforms: [
            { os: "linux", architecture: "arm64" },
            { os: "linux", architecture: "amd64" },
          ],
        },
      ),
    );
    const expected = { "example.com/owner": "ci", [PLATFORM_ANNOTATION]: "linux/arm64,linux/amd64" };
    assert.deepEqual(deployment.metadata.annotations, expected);
    assert.deepEqual(deployment.spec.template.metadata.annotations, expected);
  });

  it("passes env.NAME options as the container's environment", () => {
    const { deployment } = engineObjects(spec({ "env.HTTP_PROXY": "http://proxy:3128" }));
    assert.deepEqual(deployment.spec.template.spec.containers[0]!.env, [
      { name: "HTTP_PROXY", value: "http://proxy:3128" },
    ]);
  });

  it("makes no ConfigMap without an engine configuration file", () => {
    assert.equal(engineObjects(spec()).configMap, undefined);
  });

  it("holds the engine configuration file in a ConfigMap mounted where kilnd reads it", () => {
    const { deployment, configMap } = engineObjects(spec({}, { configFile: "debug = true\n" }));
    assert.equal(configMap?.metadata.name, configMapName("kube0"));
    assert.equal(configMap?.metadata.namespace, "builds");
    assert.deepEqual(configMap?.data, { [ENGINE_CONFIG_KEY]: "debug = true\n" });
    assert.deepEqual(deployment.spec.template.spec.volumes?.[1], {
      name: "config",
      configMap: { name: "kube0-config" },
    });
    assert.deepEqual(deployment.spec.template.spec.containers[0]!.volumeMounts?.[1], {
      name: "config",
      mountPath: ENGINE_CONFIG_DIR,
    });
  });
});
