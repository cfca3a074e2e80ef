// Multi-node builds on the client's side (src/client/multi-node*.ts) with two real engines in this
// process, each standing in for one node of a builder with its own state: the split of a request
// over the nodes, their progress in one stream, the joins (an index pushed to the plain registry,
// one OCI archive, one root-filesystem tar), a failing node cancelling the other, and the refusals.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { withBuildNodes } from "../../cli-plugin/builder-engine.js";
import { createBuilder } from "../../cli-plugin/commands/create.js";
import { type BuildRequest, newBuildRequest } from "../../src/client/build-request.js";
import { NodeBuildError, type NodePlacement } from "../../src/client/multi-node.js";
import { NodeProgressMerger } from "../../src/client/multi-node-progress.js";
import { runBuild } from "../../src/client/run-build.js";
import { type Engine, openEngine } from "../../src/engine/engine.js";
import type { BuildOutcome } from "../../src/engine/types.js";
import type { Digest } from "../../src/oci/digest.js";
import { parsePlatform } from "../../src/oci/platform.js";
import type { ImageIndex } from "../../src/oci/spec.js";
import type { ProgressEvent, VertexEvent } from "../../src/solver/progress.js";
import { loadWorld, REPO_ROOT } from "../support/world.js";

const world = loadWorld();
const AMD64 = parsePlatform("linux/amd64");
const ARM64 = parsePlatform("linux/arm64");

function vertices(events: readonly ProgressEvent[]): VertexEvent[] {
  const out = new Map<string, VertexEvent>();
  for (const e of events) if (e.type === "vertex") out.set(e.vertex, { ...out.get(e.vertex), ...e });
  return [...out.values()];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function mountsUnder(dirs: readonly string[]): Promise<number> {
  const mounts = await readFile("/proc/self/mounts", "utf8");
  return mounts.split("\n").filter((l) => dirs.some((d) => l.split(" ")[1]?.startsWith(d))).length;
}

function skopeoRaw(ref: string): ImageIndex {
  return JSON.parse(
    execFileSync("skopeo", ["inspect", "--tls-verify=false", "--raw", ref], { encoding: "utf8" }),
  );
}

describe("NodeProgressMerger (one progress stream for several nodes)", () => {
  it("gives each node its own vertices and names the platform in a single-platform node's steps", () => {
    const events: ProgressEvent[] = [];
    const merger = new NodeProgressMerger((e) => events.push(e));
    const shared = `sha256:${"a".repeat(64)}` as Digest;
    const a = merger.forNode("n0", [AMD64]);
    const b = merger.forNode("n1", [ARM64]);
    a({ type: "vertex", vertex: shared, name: "[2/3] RUN make", inputs: [shared], started: 1 });
    b({ type: "vertex", vertex: shared, name: "[build  2/10] RUN make", inputs: [], started: 1 });
    b({ type: "vertex", vertex: shared, name: "[internal] load build definition", inputs: [] });
    a({ type: "log", vertex: shared, stream: 1, data: Buffer.from("x"), timestamp: 1 });
    const [va, vb, vi, log] = events as [VertexEvent, VertexEvent, VertexEvent, ProgressEvent];
    assert.equal(va.name, "[linux/amd64 2/3] RUN make");
    assert.equal(vb.name, "[linux/arm64 build  2/10] RUN make");
    assert.equal(vi.name, "[internal] load build definition");
    assert.notEqual(va.vertex, vb.vertex);
    assert.equal(vb.vertex, vi.vertex);
    assert.deepEqual(va.inputs, [va.vertex]);
    assert.equal(log.type === "log" && log.vertex, va.vertex);
  });

  it("shows a warning every node reports once", () => {
    const events: ProgressEvent[] = [];
    const merger = new NodeProgressMerger((e) => events.push(e));
    const w: ProgressEvent = {
      type: "warning",
      message: "JSONArgsRecommended",
      location: { file: "Dockerfile", line: 3 },
    };
    merger.forNode("n0", [AMD64])(w);
    merger.forNode("n1", [ARM64])(w);
    assert.equal(events.length, 1);
  });
});

describe("multi-node builds (two engines in this process as two nodes)", function () {
  this.timeout(240_000);
  const states: string[] = [];
  const engines: Engine[] = [];
  let placement: NodePlacement;
  let ctx: string;
  let out: string;
  let placements = 0;

  before(async () => {
    for (let i = 0; i < 2; i++) {
      const state = await mkdtemp(join(tmpdir(), `kiln-node${i}-state-`));
      states.push(state);
      engines.push(await openEngine({ stateDir: state }));
    }
    placement = {
      builder: "pair",
      nodes: [
        { name: "pair0", platforms: [AMD64], engine: engines[0]! },
        { name: "pair1", platforms: [ARM64], engine: engines[1]! },
      ],
    };
  });
  after(async () => {
    for (const e of engines) await e.close();
    for (const s of states) await rm(s, { recursive: true, force: true });
  });
  beforeEach(async () => {
    ctx = await mkdtemp(join(tmpdir(), "kiln-ctx-"));
    out = await mkdtemp(join(tmpdir(), "kiln-out-"));
  });
  afterEach(async () => {
    await rm(ctx, { recursive: true, force: true });
    await rm(out, { recursive: true, force: true });
  });

  async function build(
    dockerfile: string,
    given: Partial<BuildRequest>,
    opts: { signal?: AbortSignal; placement?: NodePlacement } = {},
  ): Promise<{ outcome: BuildOutcome; events: ProgressEvent[] }> {
    await writeFile(join(ctx, "Dockerfile"), dockerfile);
    const req = newBuildRequest(ctx, { platforms: [AMD64, ARM64], ...given });
    const events: ProgressEvent[] = [];
    const outcome = await runBuild(req, {
      onProgress: (e) => events.push(e),
      signal: opts.signal ?? new AbortController().signal,
      stdout: process.stdout,
      nodes: (_req, fn) => {
        placements++;
        return fn(opts.placement ?? placement);
      },
    });
    return { outcome, events };
  }

  const DOCKERFILE = `FROM ${world.busybox}\nARG TARGETARCH\nRUN uname -m > /arch && echo "$TARGETARCH" > /targetarch\n`;

  it("pushes each node's manifest by digest and the joined index under the tags", async () => {
    const repo = `${world.registry}/kiln-test/multi-node-${randomBytes(3).toString("hex")}`;
    const { outcome, events } = await build(DOCKERFILE, {
      outputs: [{ type: "image", names: [`${repo}:a`, `${repo}:b`], push: true, attrs: {} }],
    });
    const index = skopeoRaw(`docker://${repo}:a`);
    assert.equal(index.mediaType, "application/vnd.oci.image.index.v1+json");
    assert.deepEqual(
      index.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`),
      ["linux/amd64", "linux/arm64"],
    );
    assert.deepEqual(skopeoRaw(`docker://${repo}:b`), index);
    // The nodes pushed by digest only: the repository has the build's tags and no other.
    const tags = JSON.parse(
      execFileSync("skopeo", ["list-tags", "--tls-verify=false", `docker://${repo}`], { encoding: "utf8" }),
    ).Tags as string[];
    assert.deepEqual(tags.sort(), ["a", "b"]);
    const md = outcome.metadata;
    assert.match(String(md["containerimage.digest"]), /^sha256:[a-f0-9]{64}$/);
    assert.equal(outcome.imageId, md["containerimage.digest"]);
    const platforms = md["kiln.platforms"] as Record<string, { node: string; digest: string }>;
    assert.equal(platforms["linux/amd64"]?.node, "pair0");
    assert.equal(platforms["linux/arm64"]?.node, "pair1");
    assert.equal(platforms["linux/arm64"]?.digest, index.manifests[1]?.digest);
    // The per-platform manifests are in the repository by digest; the arm64 one runs aarch64.
    const arm = JSON.parse(
      execFileSync(
        "skopeo",
        ["inspect", "--tls-verify=false", "--config", `docker://${repo}@${index.manifests[1]!.digest}`],
        { encoding: "utf8" },
      ),
    );
    assert.equal(arm.architecture, "arm64");
    // Each node's steps carry its platform, and each ran only its own.
    const runs = vertices(events).filter((v) => /RUN uname/.test(v.name));
    assert.deepEqual(runs.map((v) => v.name.split(" ")[0]).sort(), ["[linux/amd64", "[linux/arm64"]);
    assert.ok(vertices(events).some((v) => /^merging manifest list/.test(v.name) && v.completed));
  });

  it("joins the nodes' OCI archives into one archive with an index of both platforms", async () => {
    const dest = join(out, "image.tar");
    const { outcome } = await build(DOCKERFILE, {
      outputs: [{ type: "oci", dest, tar: true, names: ["example.com/multi:1"], attrs: {} }],
    });
    execFileSync("tar", ["-xf", dest, "-C", out]);
    const top = JSON.parse(await readFile(join(out, "index.json"), "utf8")) as ImageIndex;
    assert.equal(top.manifests.length, 1);
    assert.equal(top.manifests[0]!.digest, outcome.metadata["containerimage.digest"]);
    assert.equal(top.manifests[0]!.annotations?.["org.opencontainers.image.ref.name"], "1");
    const index = skopeoRaw(`oci:${out}:1`);
    assert.deepEqual(
      index.manifests.map((m) => m.platform?.architecture),
      ["amd64", "arm64"],
    );
    const arm = JSON.parse(
      execFileSync("skopeo", ["inspect", "--override-arch", "arm64", "--config", `oci:${out}:1`], {
        encoding: "utf8",
      }),
    );
    assert.equal(arm.architecture, "arm64");
  });

  it("joins the nodes' root filesystems into one tar with a folder per platform", async () => {
    const dest = join(out, "rootfs.tar");
    await build(DOCKERFILE, { outputs: [{ type: "tar", dest, attrs: {} }] });
    const listing = execFileSync("tar", ["-tf", dest], { encoding: "utf8" }).split("\n");
    assert.ok(listing.includes("linux_amd64/arch"));
    assert.ok(listing.includes("linux_arm64/arch"));
    assert.equal(execFileSync("tar", ["-xOf", dest, "linux_arm64/arch"], { encoding: "utf8" }), "aarch64\n");
    assert.equal(execFileSync("tar", ["-xOf", dest, "linux_amd64/arch"], { encoding: "utf8" }), "x86_64\n");
  });

  it("writes a local output's platforms into their folders", async () => {
    await build(DOCKERFILE, { outputs: [{ type: "local", dest: out, attrs: {} }] });
    assert.equal(await readFile(join(out, "linux_arm64", "targetarch"), "utf8"), "arm64\n");
    assert.equal(await readFile(join(out, "linux_amd64", "targetarch"), "utf8"), "amd64\n");
  });

  it("fails the build naming the node and platform that failed, and cancels the other node", async () => {
    const started = Date.now();
    await assert.rejects(
      build(
        `FROM ${world.busybox}\nARG TARGETARCH\nRUN [ "$TARGETARCH" != arm64 ] || exit 7\nRUN [ "$TARGETARCH" = arm64 ] || sleep 60\n`,
        { outputs: [] },
      ),
      (err: Error) => {
        assert.ok(err instanceof NodeBuildError, String(err));
        assert.equal(err.node, "pair1");
        assert.match(
          err.message.split("\n").at(-1)!,
          /^building linux\/arm64 on node pair1: .*exit code: 7$/,
        );
        return true;
      },
    );
    // The amd64 node's 60 s step was cancelled, not waited for.
    assert.ok(Date.now() - started < 45_000, `took ${Date.now() - started} ms`);
    // A cancelled build's engine unmounts its step's root filesystem shortly after the build ends.
    for (let i = 0; i < 100 && (await mountsUnder(states)) > 0; i++) await sleep(100);
    assert.equal(await mountsUnder(states), 0);
  });

  it("refuses --load of several platforms before opening any node", async () => {
    const before = placements;
    await assert.rejects(
      build(DOCKERFILE, { outputs: [{ type: "docker", tar: true, names: ["multi:1"], attrs: {} }] }),
      /--load cannot take a multi-platform build \(linux\/amd64, linux\/arm64\).*image index/,
    );
    assert.equal(placements, before);
  });

  it("refuses two pushed image outputs across nodes", async () => {
    await assert.rejects(
      build(DOCKERFILE, {
        outputs: [
          { type: "image", names: [`${world.registry}/kiln-test/x:1`], push: true, attrs: {} },
          { type: "image", names: [`${world.registry}/kiln-test/y:1`], push: true, attrs: {} },
        ],
      }),
      /pushes one image output/,
    );
  });
});

/** kilnd from the sources on a unix socket under `work`; resolves once it listens. */
async function startKilnd(work: string): Promise<{ child: ChildProcess; socket: string }> {
  const socket = join(work, "kilnd.sock");
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(REPO_ROOT, "src/server/main.ts"),
      "--root",
      join(work, "root"),
      "--addr",
      `unix://${socket}`,
    ],
    { cwd: REPO_ROOT, stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  for (let i = 0; i < 300 && !stderr.includes("listening on") && child.exitCode === null; i++)
    await sleep(100);
  assert.ok(stderr.includes("listening on"), `kilnd did not start: ${stderr}`);
  return { child, socket };
}

describe("multi-node builds on a builder of two kilnd nodes (remote driver, engine API)", function () {
  this.timeout(240_000);
  const daemons: { child: ChildProcess; socket: string }[] = [];
  let work: string;
  let env: NodeJS.ProcessEnv;
  let ctx: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "kiln-multi-node-remote-"));
    for (let i = 0; i < 2; i++) {
      const dir = join(work, `node${i}`);
      execFileSync("mkdir", ["-p", dir]);
      daemons.push(await startKilnd(dir));
    }
    env = {
      ...process.env,
      DOCKER_CONFIG: join(work, "docker-config"),
      KILN_BUILDER: "",
      BUILDX_BUILDER: "",
    };
    const node = (name: string, endpoint: string, platforms: string[], append: boolean) =>
      createBuilder(
        {
          name,
          endpoint,
          driver: "remote",
          driverOpts: [],
          platforms,
          append,
          leave: false,
          use: false,
          bootstrap: false,
          ...(append ? { node: `${name}1` } : {}),
        },
        env,
      );
    // "split": a node per platform. "reported": only the first node declares a platform.
    await node("split", `unix://${daemons[0]!.socket}`, ["linux/amd64"], false);
    await node("split", `unix://${daemons[1]!.socket}`, ["linux/arm64"], true);
    await node("reported", `unix://${daemons[0]!.socket}`, ["linux/amd64"], false);
    await node("reported", `unix://${daemons[1]!.socket}`, [], true);
    ctx = join(work, "ctx");
    execFileSync("mkdir", ["-p", ctx]);
  });
  after(async () => {
    for (const d of daemons) {
      d.child.kill("SIGKILL");
      if (d.child.exitCode === null) await new Promise((r) => d.child.once("exit", r));
    }
    await rm(work, { recursive: true, force: true });
  });

  it("builds each platform on the node that declares it and pushes the joined index", async () => {
    const dockerfile = `FROM ${world.busybox}\nARG TARGETARCH\nRUN uname -m > /arch\n`;
    await writeFile(join(ctx, "Dockerfile"), dockerfile);
    const repo = `${world.registry}/kiln-test/multi-node-remote-${randomBytes(3).toString("hex")}`;
    const req = newBuildRequest(ctx, {
      platforms: [AMD64, ARM64],
      outputs: [{ type: "image", names: [`${repo}:1`], push: true, attrs: {} }],
    });
    const placed: string[] = [];
    const outcome = await runBuild(req, {
      onProgress: () => {},
      signal: new AbortController().signal,
      stdout: process.stdout,
      env,
      nodes: (r, fn) =>
        withBuildNodes("split", env, r.platforms, (p) => {
          for (const n of p.nodes)
            placed.push(`${n.name}=${n.platforms.map((x) => x.architecture).join(",")}`);
          return fn(p);
        }),
    });
    assert.deepEqual(placed, ["split0=amd64", "split1=arm64"]);
    const index = skopeoRaw(`docker://${repo}:1`);
    assert.deepEqual(
      index.manifests.map((m) => m.platform?.architecture),
      ["amd64", "arm64"],
    );
    const digest = execFileSync(
      "skopeo",
      ["inspect", "--tls-verify=false", "--format", "{{.Digest}}", `docker://${repo}:1`],
      { encoding: "utf8" },
    ).trim();
    assert.equal(outcome.metadata["containerimage.digest"], digest);
    assert.equal(outcome.imageId, digest);
  });

  it("asks the nodes' engines what they run when no node declares a requested platform, and spreads over them", async () => {
    // linux/386 is declared nowhere; both engines report it (the kernel runs 386 on amd64), so
    // it goes to the node not already given linux/amd64 (which only the first node declares).
    const placed = await withBuildNodes("reported", env, [AMD64, parsePlatform("linux/386")], async (p) =>
      p.nodes.map((n) => `${n.name}=${n.platforms.map((x) => x.architecture).join(",")}`),
    );
    assert.deepEqual(placed, ["reported0=amd64", "reported1=386"]);
  });
});
