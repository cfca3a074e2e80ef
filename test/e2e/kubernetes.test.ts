// kubernetes builders through the CLI (`bin/kiln` and `docker kiln`), against the Kubernetes API
// simulator (test/support/kubernetes-api-simulator.ts): no real API server can run on the test
// machine, so the API is simulated, while the pods the driver's Deployments ask for are real
// containers in the test world's dockerd running the engine image, and every exec is a real
// `docker exec` of `kilnd dial-stdio` streamed over the API's WebSocket exec protocol. The CLI
// finds the simulator through KUBECONFIG, as it would a cluster.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { podReady } from "../../drivers/kubernetes/kube-objects.js";
import { configMapName, ENGINE_CONFIG_KEY } from "../../drivers/kubernetes/manifest.js";
import { stickyPod } from "../../drivers/kubernetes/pod-chooser.js";
import { DOCKER, DOCKER_CLI, installDockerKiln } from "../support/docker-kiln.js";
import { KubernetesApiSimulator } from "../support/kubernetes-api-simulator.js";
import { loadWorld, REPO_ROOT } from "../support/world.js";

const KILN = join(REPO_ROOT, "bin", "kiln");
const NAMESPACE = "kiln-builds";
const world = loadWorld();

interface Ran {
  readonly stdout: string;
  readonly stderr: string;
}

describe("kubernetes builders against the Kubernetes API simulator (pods are dockerd containers)", function () {
  this.timeout(300_000);
  const id = randomBytes(3).toString("hex");
  const builder = `kilne2ek8s${id}`;
  const node = `${builder}0`;
  const stickyBuilder = `kilne2ek8ss${id}`;
  const ociTag = `kiln-e2e-k8s-${id}:oci`;
  let sim: KubernetesApiSimulator;
  let dir: string;
  let ctx: string;
  let env: NodeJS.ProcessEnv;

  /**
   * Runs a CLI command without blocking this process, which serves the simulator the command
   * talks to; fails the test with its output unless it exits 0.
   */
  const run = (program: string, args: readonly string[], cwd = ctx): Promise<Ran> =>
    new Promise((resolve, reject) => {
      execFile(program, [...args], { env, cwd, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
        if (err)
          reject(
            new assert.AssertionError({
              message: `${program} ${args.join(" ")} failed: ${err.message}\n${stdout}\n${stderr}`,
            }),
          );
        else resolve({ stdout, stderr });
      });
    });
  const kiln = (...args: string[]) => run(KILN, args);
  const dockerKiln = (...args: string[]) => run(DOCKER_CLI, ["kiln", ...args]);

  const dialsOf = (deployment: string) =>
    sim.execs.filter((e) => e.pod.startsWith(`${deployment}-`) && e.command.join(" ") === "kilnd dial-stdio");

  before(async function () {
    this.timeout(300_000);
    sim = await KubernetesApiSimulator.start({ dockerHost: world.dockerHost, namespaces: [NAMESPACE] });
    dir = mkdtempSync(join(tmpdir(), "kiln-e2e-k8s-"));
    const kubeconfig = join(dir, "kubeconfig");
    writeFileSync(kubeconfig, sim.kubeconfig());
    env = { ...installDockerKiln(dir).env, KUBECONFIG: kubeconfig, DOCKER_HOST: world.dockerHost };
    ctx = join(dir, "ctx");
    mkdirSync(ctx);
    writeFileSync(join(ctx, "input.txt"), "from the client\n");
    writeFileSync(
      join(ctx, "Dockerfile"),
      [
        `FROM ${world.busybox}`,
        "COPY input.txt /src/input.txt",
        "RUN mkdir /out && cat /src/input.txt > /out/artifact",
        "RUN echo built in a pod >> /out/artifact",
        'CMD ["cat", "/out/artifact"]',
        "",
      ].join("\n"),
    );
    writeFileSync(join(dir, "kilnd.toml"), "# engine configuration of the e2e builder\n");
  });

  after(async () => {
    await sim?.close();
    execFile(DOCKER, ["rmi", "-f", ociTag], () => {});
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("creates a kubernetes builder: bootstrap makes a Deployment and ConfigMap, and its pod runs kilnd privileged", async () => {
    const out = await dockerKiln(
      "create",
      "--name",
      builder,
      "--driver",
      "kubernetes",
      "--driver-opt",
      `namespace=${NAMESPACE},replicas=1,requests.cpu=100m,limits.memory=2Gi,nodeselector=kubernetes.io/os=linux`,
      "--config",
      join(dir, "kilnd.toml"),
      "--bootstrap",
    );
    assert.match(out.stdout, new RegExp(`^${builder}$`, "m"));
    const deployment = sim.deployment(NAMESPACE, node);
    assert.ok(deployment, `deployment ${NAMESPACE}/${node} exists`);
    assert.equal(deployment.status?.readyReplicas, 1);
    assert.deepEqual(deployment.spec.template.spec.nodeSelector, { "kubernetes.io/os": "linux" });
    assert.equal(
      sim.configMap(NAMESPACE, configMapName(node))?.data[ENGINE_CONFIG_KEY],
      "# engine configuration of the e2e builder\n",
    );
    const [pod] = sim.podsOf(NAMESPACE, node);
    assert.ok(pod && podReady(pod), "the pod is ready");
    const container = JSON.parse(
      execFileSync(DOCKER, ["container", "inspect", sim.containerOf(NAMESPACE, pod.metadata.name)!], {
        encoding: "utf8",
      }),
    )[0];
    assert.equal(container.State.Running, true);
    // Privileged, or where dockerd cannot start privileged containers every capability it has.
    assert.ok(
      container.HostConfig.Privileged === true || container.HostConfig.CapAdd?.includes("ALL"),
      `the pod's container has a privileged container's powers: ${JSON.stringify(container.HostConfig)}`,
    );
    assert.equal(
      execFileSync(
        DOCKER,
        [
          "exec",
          container.Id,
          "/usr/local/bin/node",
          "-e",
          "process.stdout.write(require('fs').readFileSync('/etc/kiln/kilnd.toml','utf8'))",
        ],
        {
          encoding: "utf8",
        },
      ),
      "# engine configuration of the e2e builder\n",
    );
  });

  it("lists the builder's node as running with `kiln ls`", async () => {
    const { stdout } = await kiln("ls");
    assert.match(stdout, new RegExp(`^${builder}\\s+kubernetes\\s`, "m"));
    assert.match(stdout, new RegExp(`^ \\\\_ ${node}\\s+\\\\_ \\s*running\\s+v\\S+`, "m"));
  });

  it("builds a Dockerfile with RUN steps in the pod and exports -o type=oci to the client", async () => {
    const before = dialsOf(node).length;
    const oci = join(dir, "image-oci.tar");
    const { stderr } = await kiln(
      "--builder",
      builder,
      "build",
      "--progress=plain",
      "-o",
      `type=oci,dest=${oci}`,
      ctx,
    );
    assert.match(stderr, /RUN echo built in a pod/);
    const dials = dialsOf(node).slice(before);
    assert.ok(dials.length > 0, "the build reached the engine through a pod exec");
    // v5 is preferred where the API server has it: it lets the client close stdin alone.
    assert.ok(
      dials.every((d) => d.protocol === "v5.channel.k8s.io"),
      JSON.stringify(dials),
    );
    const layout = join(dir, "oci-layout");
    mkdirSync(layout);
    execFileSync("tar", ["-xf", oci, "-C", layout]);
    const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
    assert.equal(index.manifests.length, 1);
    // skopeo reads the layout independently, and dockerd runs what it copies.
    execFileSync("skopeo", ["copy", `oci:${layout}`, `docker-daemon:${ociTag}`], { stdio: "pipe" });
    assert.equal(
      execFileSync(DOCKER, ["run", "--rm", ociTag], { encoding: "utf8" }),
      "from the client\nbuilt in a pod\n",
    );
  });

  it("reaches the engine over the v4.channel.k8s.io exec protocol of API servers before Kubernetes 1.30", async () => {
    sim.execProtocols = ["v4.channel.k8s.io"];
    try {
      const from = dialsOf(node).length;
      const out = join(dir, "v4-out");
      await kiln("--builder", builder, "build", "-o", `type=local,dest=${out}`, ctx);
      assert.equal(readFileSync(join(out, "out", "artifact"), "utf8"), "from the client\nbuilt in a pod\n");
      const protocols = dialsOf(node)
        .slice(from)
        .map((d) => d.protocol);
      assert.ok(protocols.length > 0 && protocols.every((p) => p === "v4.channel.k8s.io"), `${protocols}`);
    } finally {
      sim.execProtocols = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
    }
  });

  it("stops the builder with `docker kiln stop`: the Deployment scales to 0, its containers go, ls shows stopped", async () => {
    await dockerKiln("stop", builder);
    assert.equal(sim.deployment(NAMESPACE, node)?.spec.replicas, 0);
    assert.deepEqual(sim.podsOf(NAMESPACE, node), []);
    assert.deepEqual(
      (await sim.containers()).filter((c) => c.Labels["io.kubernetes.pod.name"]?.startsWith(`${node}-`)),
      [],
    );
    assert.match((await kiln("ls")).stdout, new RegExp(`^ \\\\_ ${node}\\s+\\\\_ \\s*stopped`, "m"));
  });

  it("boots a stopped builder again for a build: the Deployment scales back up and the build runs in its pod", async () => {
    const from = dialsOf(node).length;
    await kiln("--builder", builder, "build", ctx);
    assert.equal(sim.deployment(NAMESPACE, node)?.spec.replicas, 1);
    const [pod] = sim.podsOf(NAMESPACE, node);
    assert.ok(pod && podReady(pod), "a new pod is ready");
    assert.deepEqual(
      dialsOf(node)
        .slice(from)
        .map((d) => d.pod),
      [pod.metadata.name],
    );
  });

  it("removes the builder with `kiln rm`: Deployment, ConfigMap and every pod container are gone", async () => {
    await kiln("rm", builder);
    assert.equal(sim.deployment(NAMESPACE, node), undefined);
    assert.equal(sim.configMap(NAMESPACE, configMapName(node)), undefined);
    assert.deepEqual(
      (await sim.containers()).filter((c) => c.Labels["io.kubernetes.pod.name"]?.startsWith(`${node}-`)),
      [],
    );
    assert.doesNotMatch((await kiln("ls")).stdout, new RegExp(builder));
  });

  describe("with replicas=2 and loadbalance=sticky", () => {
    const stickyNode = `${stickyBuilder}0`;
    /** The pods that served `kilnd dial-stdio` execs since `from`. */
    const servedSince = (from: number) =>
      dialsOf(stickyNode)
        .slice(from)
        .map((d) => d.pod);

    before(async () => {
      await kiln(
        "create",
        "--name",
        stickyBuilder,
        "--driver",
        "kubernetes",
        "--driver-opt",
        `namespace=${NAMESPACE},replicas=2,loadbalance=sticky`,
        "--bootstrap",
      );
    });

    it("runs two builds from the same client directory on the same pod", async () => {
      assert.equal(sim.podsOf(NAMESPACE, stickyNode).filter(podReady).length, 2, "both replicas are ready");
      const from = dialsOf(stickyNode).length;
      await kiln("--builder", stickyBuilder, "build", ctx);
      await kiln("--builder", stickyBuilder, "build", "--no-cache", ctx);
      const served = servedSince(from);
      assert.ok(served.length >= 2, `each build dialled a pod: ${served}`);
      assert.deepEqual(new Set(served), new Set([stickyPod(podNames(), ctx)]));
    });

    it("serves a client in another directory from the pod that directory hashes to", async () => {
      const home = stickyPod(podNames(), ctx);
      const other = podNames().find((p) => p !== home)!;
      // A directory whose key lands on the pod the first client's does not use.
      let attempt = 0;
      let elsewhere = join(dir, "client-0");
      while (stickyPod(podNames(), elsewhere) !== other) elsewhere = join(dir, `client-${++attempt}`);
      mkdirSync(elsewhere);
      const from = dialsOf(stickyNode).length;
      await run(KILN, ["--builder", stickyBuilder, "build", ctx], elsewhere);
      const served = servedSince(from);
      assert.ok(served.length >= 1 && served.every((p) => p === other), `served by ${served}, not ${home}`);
    });

    it("removes both pods' containers with `kiln rm`", async () => {
      await kiln("rm", stickyBuilder);
      assert.deepEqual(sim.podsOf(NAMESPACE, stickyNode), []);
      assert.deepEqual(
        (await sim.containers()).filter((c) =>
          c.Labels["io.kubernetes.pod.name"]?.startsWith(`${stickyNode}-`),
        ),
        [],
      );
    });

    function podNames(): string[] {
      return sim
        .podsOf(NAMESPACE, stickyNode)
        .map((p) => p.metadata.name)
        .sort();
    }
  });
});
