// A builder of two docker-container nodes, one per platform, as a user makes and uses it: a
// two-platform build is split over the nodes and joined into one index in the registry; each node
// builds only its own platform; a step that fails on one platform fails the build naming the node.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadWorld, REPO_ROOT } from "../support/world.js";

const KILN = join(REPO_ROOT, "bin", "kiln");
const DOCKER = "/usr/bin/docker";
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

describe("multi-node builds on a builder of two docker-container nodes", function () {
  this.timeout(300_000);
  const id = randomBytes(3).toString("hex");
  const builder = `kilnmn${id}`;
  const nodes = [`${builder}0`, `${builder}1`];
  const repo = `${world.registry}/kiln-e2e/multi-node-${id}`;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  const kiln = (...args: string[]) => spawnSync(KILN, args, { env, encoding: "utf8" });
  const kilnOk = (...args: string[]) => {
    const r = kiln(...args);
    assert.equal(r.status, 0, `kiln ${args.join(" ")} failed:\n${r.stderr}`);
    return r;
  };
  const context = (name: string, dockerfile: string): string => {
    const ctx = join(dir, name);
    execFileSync("mkdir", ["-p", ctx]);
    writeFileSync(join(ctx, "Dockerfile"), dockerfile);
    return ctx;
  };
  const MAIN = `FROM ${world.busybox}\nARG TARGETARCH\nRUN uname -m > /arch\nRUN echo "built for $TARGETARCH" > /built\n`;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "kiln-e2e-multi-node-"));
    env = {
      ...process.env,
      DOCKER_CONFIG: join(dir, "docker-config"),
      KILN_STATE: join(dir, "state"),
      KILN_BUILDER: "",
      BUILDX_BUILDER: "",
    };
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
      spawnSync(DOCKER, ["rm", "-f", `kiln_engine_${node}`]);
      spawnSync(DOCKER, ["volume", "rm", `kiln_engine_${node}_state`]);
    }
    rmSync(dir, { recursive: true, force: true });
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
    const index = JSON.parse(
      execFileSync("skopeo", ["inspect", "--tls-verify=false", "--raw", `docker://${repo}:1`], {
        encoding: "utf8",
      }),
    ) as {
      mediaType: string;
      manifests: { digest: string; platform: { os: string; architecture: string } }[];
    };
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
