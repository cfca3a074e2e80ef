// Builders of two nodes, one per platform, as a user makes and uses them through `docker kiln`: a
// two-platform build is split over the nodes and joined into one index in the registry; each node
// builds only its own platform (its engine's log shows only that platform's steps); a step that
// fails on one platform fails the build naming the node and cancels the other. The nodes are two
// docker-container engines, or a docker-container engine and a remote kilnd (different drivers).
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { containerName, volumeName } from "../../drivers/docker-container/driver.js";
import {
  DOCKER,
  type DockerKiln,
  installDockerKiln,
  type KilndProcess,
  startKilnd,
} from "../support/docker-kiln.js";
import { loadWorld } from "../support/world.js";

const world = loadWorld();

/** Whether the plain progress shows the step named by `step` as CACHED. */
function stepCached(progress: string, step: RegExp): boolean {
  const lines = progress.split("\n");
  const nums = lines.flatMap((l) => {
    const m = /^#(\d+) (.*)$/.exec(l);
    return m && step.test(m[2]!) ? [m[1]!] : [];
  });
  assert.ok(nums.length > 0, `no step ${step} in the progress:\n${progress}`);
  return nums.every((n) => lines.includes(`#${n} CACHED`));
}

/** The index pushed as `ref`, read back with skopeo. */
function pushedIndex(ref: string): {
  mediaType: string;
  manifests: { digest: string; platform: { os: string; architecture: string } }[];
} {
  return JSON.parse(
    execFileSync("skopeo", ["inspect", "--tls-verify=false", "--raw", `docker://${ref}`], {
      encoding: "utf8",
    }),
  );
}

/** kilnd's log in a docker-container node's engine container. */
function engineLog(node: string): string {
  const r = spawnSync(DOCKER, ["logs", containerName(node)], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return `${r.stdout}${r.stderr}`;
}

/** The engine's log once it matches `until` (up to 10 s): a cancelled build may end after the CLI. */
async function engineLogUntil(node: string, until: RegExp): Promise<string> {
  let log = engineLog(node);
  for (const started = Date.now(); !until.test(log) && Date.now() - started < 10_000; ) {
    await new Promise((r) => setTimeout(r, 100));
    log = engineLog(node);
  }
  return log;
}

describe("multi-node builds on a builder of two docker-container nodes", function () {
  this.timeout(300_000);
  const id = randomBytes(3).toString("hex");
  const builder = `kilnmn${id}`;
  const nodes = [`${builder}0`, `${builder}1`];
  const repo = `${world.registry}/kiln-e2e/multi-node-${id}`;
  let dir: string;
  let docker: DockerKiln;

  const kiln = (...args: string[]) => docker.run(args);
  const kilnOk = (...args: string[]) => docker.ok(args);
  const context = (name: string, dockerfile: string): string => {
    const ctx = join(dir, name);
    mkdirSync(ctx, { recursive: true });
    writeFileSync(join(ctx, "Dockerfile"), dockerfile);
    return ctx;
  };
  const MAIN = `FROM ${world.busybox}\nARG TARGETARCH\nRUN uname -m > /arch\nRUN echo "built for $TARGETARCH" > /built\n`;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "kiln-e2e-multi-node-"));
    docker = installDockerKiln(dir);
    kilnOk(
      "create",
      "--driver",
      "docker-container",
      "--driver-opt",
      "network=host",
      "--name",
      builder,
      "--platform",
      "linux/amd64",
    );
    // A builder's nodes have distinct endpoints: the second names the same daemon by its socket.
    kilnOk(
      "create",
      "--append",
      "--name",
      builder,
      "--node",
      nodes[1]!,
      "--driver-opt",
      "network=host",
      "--platform",
      "linux/arm64",
      "unix:///var/run/docker.sock",
    );
  });

  after(() => {
    kiln("rm", builder);
    for (const node of nodes) {
      spawnSync(DOCKER, ["rm", "-f", containerName(node)]);
      spawnSync(DOCKER, ["volume", "rm", volumeName(node)]);
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("builds linux/amd64 and linux/arm64 on their nodes and pushes one index with both", () => {
    const ctx = context("main", MAIN);
    const meta = join(dir, "metadata.json");
    const r = kilnOk(
      "build",
      "--builder",
      builder,
      "--progress=plain",
      "--platform",
      "linux/amd64,linux/arm64",
      "-t",
      `${repo}:1`,
      "--push",
      "--metadata-file",
      meta,
      ctx,
    );
    assert.match(r.stderr, /\[linux\/amd64 2\/3\] RUN uname -m > \/arch/);
    assert.match(r.stderr, /\[linux\/arm64 2\/3\] RUN uname -m > \/arch/);
    assert.match(r.stderr, new RegExp(`^#\\d+ \\[node ${nodes[0]}\\] building linux/amd64$`, "m"));
    assert.match(r.stderr, new RegExp(`^#\\d+ \\[node ${nodes[1]}\\] building linux/arm64$`, "m"));
    const index = pushedIndex(`${repo}:1`);
    assert.equal(index.mediaType, "application/vnd.oci.image.index.v1+json");
    assert.deepEqual(
      index.manifests.map((m) => `${m.platform.os}/${m.platform.architecture}`),
      ["linux/amd64", "linux/arm64"],
    );
    const md = JSON.parse(readFileSync(meta, "utf8"));
    const digest = execFileSync(
      "skopeo",
      ["inspect", "--tls-verify=false", "--format", "{{.Digest}}", `docker://${repo}:1`],
      {
        encoding: "utf8",
      },
    ).trim();
    assert.equal(md["containerimage.digest"], digest);
    assert.deepEqual(md["kiln.platforms"]["linux/amd64"].node, nodes[0]);
    assert.deepEqual(md["kiln.platforms"]["linux/arm64"].node, nodes[1]);
    assert.equal(md["kiln.platforms"]["linux/arm64"].digest, index.manifests[1]!.digest);
  });

  it("logs each platform's executed steps only in the engine of the node that builds it", () => {
    for (const [node, own, other] of [
      [nodes[0]!, "linux/amd64", "linux/arm64"],
      [nodes[1]!, "linux/arm64", "linux/amd64"],
    ]) {
      const log = engineLog(node);
      assert.match(
        log,
        new RegExp(
          `^kilnd: info: build [0-9a-f]+ \\(${own}\\): \\[2/3\\] RUN uname -m > /arch: done in `,
          "m",
        ),
        `${node}:\n${log}`,
      );
      assert.match(
        log,
        new RegExp(
          `^kilnd: info: build [0-9a-f]+ \\(${own}\\): \\[3/3\\] RUN echo "built for ${own.split("/")[1]}" > /built: done in `,
          "m",
        ),
        `${node}:\n${log}`,
      );
      assert.doesNotMatch(log, new RegExp(`\\(${other}\\)`), `${node}:\n${log}`);
    }
  });

  it("runs the arm64 image under dockerd as aarch64", () => {
    try {
      const out = execFileSync(
        DOCKER,
        [
          "run",
          "--rm",
          "--pull",
          "always",
          "--platform",
          "linux/arm64",
          `${repo}:1`,
          "sh",
          "-c",
          "uname -m; cat /arch /built",
        ],
        { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
      );
      assert.equal(out, "aarch64\naarch64\nbuilt for arm64\n");
    } finally {
      spawnSync(DOCKER, ["rmi", "-f", `${repo}:1`]);
    }
  });

  it("fails the build when one platform's step fails, naming the node and the platform", () => {
    const ctx = context("fail", `FROM ${world.busybox}\nARG TARGETARCH\nRUN [ "$TARGETARCH" != arm64 ]\n`);
    const r = kiln(
      "build",
      "--builder",
      builder,
      "--progress=plain",
      "--platform",
      "linux/amd64,linux/arm64",
      ctx,
    );
    assert.equal(r.status, 1, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `^ERROR: building linux/arm64 on node ${nodes[1]}: failed to solve: process .* did not complete successfully: exit code: 1$`,
        "m",
      ),
    );
  });

  it("cancels the other node's build when one node fails, and that node's engine ends it", async () => {
    const ctx = context(
      "cancel",
      `FROM ${world.busybox}\nARG TARGETARCH\nRUN [ "$TARGETARCH" != arm64 ] || exit 7\nRUN [ "$TARGETARCH" = arm64 ] || sleep 60\n`,
    );
    const started = Date.now();
    const r = kiln(
      "build",
      "--builder",
      builder,
      "--progress=plain",
      "--platform",
      "linux/amd64,linux/arm64",
      ctx,
    );
    assert.equal(r.status, 1, r.stderr);
    // The amd64 node's 60 s step was stopped, not waited for.
    assert.ok(Date.now() - started < 45_000, `took ${Date.now() - started} ms`);
    assert.match(r.stderr, new RegExp(`^#\\d+ ERROR: cancelled: node ${nodes[1]} failed$`, "m"));
    // The amd64 build is that engine's last, and it ended cancelled.
    const cancelled = /kilnd: info: build [0-9a-f]+ \(linux\/amd64\): cancelled\n$/;
    assert.match(await engineLogUntil(nodes[0]!, cancelled), cancelled);
  });

  it("fails a RUN for a platform no node runs, listing each node's platforms above the error", () => {
    // No emulator for s390x is registered on this host (only QEMU aarch64).
    const ctx = context("s390x", 'FROM scratch\nRUN ["/bin/true"]\n');
    const r = kiln(
      "build",
      "--builder",
      builder,
      "--progress=plain",
      "--platform",
      "linux/amd64,linux/s390x",
      ctx,
    );
    assert.equal(r.status, 1, r.stderr);
    const platforms = "linux/amd64(, [^;:]+)*, linux/arm64(, [^;:]+)*";
    assert.match(
      r.stderr,
      new RegExp(
        `^WARNING: no node of builder ${builder} declares or runs linux/s390x \\(its nodes: ${nodes[0]} ${platforms}; ${nodes[1]} linux/arm64, [^)]+\\): node ${nodes[0]} builds it, under emulation if its host can\nERROR: .*cannot run linux/s390x programs on this linux/amd64 host, which runs ${platforms}: no emulator is registered for it`,
        "m",
      ),
    );
  });

  it("runs a $BUILDPLATFORM stage once on each node, not once per platform", () => {
    // linux/386 is declared by neither node and both engines run it: it joins linux/amd64 on the
    // first node (the nodes are given one platform each before it), which builds both in one solve.
    const marker = randomBytes(4).toString("hex");
    const ctx = context(
      "buildplatform",
      [
        `FROM --platform=$BUILDPLATFORM ${world.busybox} AS build`,
        `RUN echo ${marker} > /marker`,
        "FROM scratch",
        "COPY --from=build /marker /marker",
        "",
      ].join("\n"),
    );
    const r = kilnOk(
      "build",
      "--builder",
      builder,
      "--progress=plain",
      "--platform",
      "linux/amd64,linux/arm64,linux/386",
      ctx,
    );
    assert.match(r.stderr, new RegExp(`^#\\d+ \\[node ${nodes[0]}\\] building linux/amd64, linux/386$`, "m"));
    assert.match(r.stderr, new RegExp(`^#\\d+ \\[node ${nodes[1]}\\] building linux/arm64$`, "m"));
    const ran = new RegExp(
      `^kilnd: info: build [0-9a-f]+ \\(([^)]+)\\): .*RUN echo ${marker} > /marker: done`,
      "gm",
    );
    const runs = (node: string) => [...engineLog(node).matchAll(ran)].map((m) => m[1]);
    assert.deepEqual(runs(nodes[0]!), ["linux/amd64,linux/386"]);
    assert.deepEqual(runs(nodes[1]!), ["linux/arm64"]);
  });

  it("built each platform only on its own node", () => {
    const ctx = context("main", MAIN);
    // Each node has its own platform's steps in its cache ...
    for (const platform of ["linux/amd64", "linux/arm64"]) {
      const r = kilnOk("build", "--builder", builder, "--progress=plain", "--platform", platform, ctx);
      // (The last step is found cached, so the solver does not even look at the ones before it.)
      assert.ok(stepCached(r.stderr, /RUN echo "built for/), `${platform}:\n${r.stderr}`);
    }
    // ... and not the other's: given linux/arm64 too, the first node runs its steps afresh.
    kilnOk("create", "--name", builder, "--node", nodes[0]!, "--platform", "linux/amd64,linux/arm64");
    const r = kilnOk("build", "--builder", builder, "--progress=plain", "--platform", "linux/arm64", ctx);
    assert.ok(!stepCached(r.stderr, /RUN uname -m/), r.stderr);
    assert.ok(!stepCached(r.stderr, /RUN echo "built for/), r.stderr);
  });
});

describe("multi-node builds on a builder of a docker-container node and a remote kilnd node", function () {
  this.timeout(300_000);
  const id = randomBytes(3).toString("hex");
  const builder = `kilnmix${id}`;
  const nodes = [`${builder}0`, `${builder}1`];
  const repo = `${world.registry}/kiln-e2e/multi-node-mixed-${id}`;
  let dir: string;
  let docker: DockerKiln;
  let kilnd: KilndProcess;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "kiln-e2e-multi-node-mixed-"));
    docker = installDockerKiln(dir);
    kilnd = await startKilnd(dir);
    docker.ok([
      "create",
      "--driver",
      "docker-container",
      "--driver-opt",
      "network=host",
      "--name",
      builder,
      "--platform",
      "linux/amd64",
    ]);
    docker.ok([
      "create",
      "--append",
      "--name",
      builder,
      "--driver",
      "remote",
      "--platform",
      "linux/arm64",
      `unix://${kilnd.socket}`,
    ]);
  });

  after(async () => {
    docker?.run(["rm", builder]);
    spawnSync(DOCKER, ["rm", "-f", containerName(nodes[0]!)]);
    spawnSync(DOCKER, ["volume", "rm", volumeName(nodes[0]!)]);
    await kilnd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("shows the appended node's own driver in inspect", () => {
    const out = docker.ok(["inspect", builder]).stdout;
    assert.match(out, /^Driver:\s+docker-container$/m);
    assert.match(
      out,
      new RegExp(`^Name:\\s+${nodes[1]}\nEndpoint:\\s+unix://${kilnd.socket}\nDriver:\\s+remote$`, "m"),
    );
  });

  it("builds linux/amd64 in the container and linux/arm64 on the remote kilnd, pushing one index", async () => {
    const ctx = join(dir, "ctx");
    mkdirSync(ctx);
    writeFileSync(join(ctx, "Dockerfile"), `FROM ${world.busybox}\nRUN uname -m > /arch\n`);
    const r = docker.ok([
      "build",
      "--builder",
      builder,
      "--progress=plain",
      "--platform",
      "linux/amd64,linux/arm64",
      "-t",
      `${repo}:1`,
      "--push",
      ctx,
    ]);
    assert.match(r.stderr, new RegExp(`^#\\d+ \\[node ${nodes[1]}\\] building linux/arm64$`, "m"));
    assert.deepEqual(
      pushedIndex(`${repo}:1`).manifests.map((m) => `${m.platform.os}/${m.platform.architecture}`),
      ["linux/amd64", "linux/arm64"],
    );
    const ran =
      /^kilnd: info: build [0-9a-f]+ \((linux\/[a-z0-9]+)\): \[2\/2\] RUN uname -m > \/arch: done/gm;
    assert.deepEqual(
      [...engineLog(nodes[0]!).matchAll(ran)].map((m) => m[1]),
      ["linux/amd64"],
    );
    assert.deepEqual(
      [...(await kilnd.log(/\): finished$/m)).matchAll(ran)].map((m) => m[1]),
      ["linux/arm64"],
    );
  });
});
