import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BuildRequest, newBuildRequest } from "../../src/client/build-request.js";
import { type Engine, openEngine } from "../../src/engine/engine.js";
import { LocalSession } from "../../src/session/local-session.js";
import type { ProgressEvent, VertexEvent } from "../../src/solver/progress.js";
import { GitHttpServer, TestRepo } from "../support/git-server.js";
import { HttpFileServer } from "../support/http-file-server.js";
import { loadWorld } from "../support/world.js";

const world = loadWorld();

interface Built {
  readonly events: ProgressEvent[];
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly imageId?: string;
}

function vertices(events: readonly ProgressEvent[]): Map<string, VertexEvent> {
  const out = new Map<string, VertexEvent>();
  for (const e of events) if (e.type === "vertex") out.set(e.vertex, { ...out.get(e.vertex), ...e });
  return out;
}

const executed = (b: Built, pattern: RegExp) =>
  [...vertices(b.events).values()].filter(
    (v) => pattern.test(v.name) && !v.cached && v.completed !== undefined,
  );
const cached = (b: Built, pattern: RegExp) =>
  [...vertices(b.events).values()].filter((v) => pattern.test(v.name) && v.cached);

describe("engine builds (real runc, snapshots and registries)", function () {
  this.timeout(180_000);
  let state: string;
  let engine: Engine;
  let ctx: string;
  let out: string;

  before(async () => {
    state = await mkdtemp(join(tmpdir(), "kiln-engine-state-"));
    engine = await openEngine({ stateDir: state });
  });
  after(async () => {
    await engine.close();
    await rm(state, { recursive: true, force: true });
  });
  beforeEach(async () => {
    ctx = await mkdtemp(join(tmpdir(), "kiln-ctx-"));
    out = await mkdtemp(join(tmpdir(), "kiln-out-"));
  });
  afterEach(async () => {
    await rm(ctx, { recursive: true, force: true });
    await rm(out, { recursive: true, force: true });
  });

  async function build(dockerfile: string, given: Partial<BuildRequest> = {}): Promise<Built> {
    await writeFile(join(ctx, "Dockerfile"), dockerfile);
    const req = newBuildRequest(ctx, { dockerfileText: dockerfile, ...given });
    const events: ProgressEvent[] = [];
    const r = await engine.build(req, new LocalSession({ request: req }), {
      onProgress: (e) => events.push(e),
    });
    return { events, metadata: r.metadata, imageId: r.imageId };
  }

  it("builds RUN steps on a registry base image into an OCI archive that umoci unpacks", async () => {
    const b = await build(
      `FROM ${world.busybox}\nRUN echo built > /built.txt\nRUN cat /built.txt > /copy.txt\n`,
      {
        outputs: [
          { type: "oci", dest: join(out, "image.tar"), tar: true, names: ["example.com/test:1"], attrs: {} },
        ],
      },
    );
    assert.equal(executed(b, /RUN/).length, 2);
    await mkdir(join(out, "layout"));
    execFileSync("tar", ["-xf", join(out, "image.tar"), "-C", join(out, "layout")]);
    execFileSync("umoci", [
      "unpack",
      "--rootless",
      "--image",
      `${join(out, "layout")}:1`,
      join(out, "bundle"),
    ]);
    assert.equal(await readFile(join(out, "bundle", "rootfs", "copy.txt"), "utf8"), "built\n");
    assert.match(String(b.metadata["containerimage.digest"]), /^sha256:[a-f0-9]{64}$/);
  });

  it("runs nothing again when the same build is repeated", async () => {
    const df = `FROM ${world.busybox}\nRUN echo one > /one\nRUN echo two > /two\n`;
    await build(df);
    const again = await build(df);
    assert.equal(executed(again, /RUN/).length, 0);
    assert.ok(cached(again, /RUN echo two/).length === 1, "the last step was a cache hit");
  });

  it("re-runs only what follows a changed COPY source and keeps a COPY of untouched files cached", async () => {
    await writeFile(join(ctx, "a.txt"), "a1");
    await writeFile(join(ctx, "b.txt"), "b1");
    const df = `FROM ${world.busybox}\nRUN echo base > /base\nCOPY a.txt /a.txt\nRUN cat /a.txt > /a-copy\n`;
    await build(df);
    await writeFile(join(ctx, "b.txt"), "b2 (not used by the build)");
    const unrelated = await build(df);
    assert.equal(executed(unrelated, /COPY|RUN/).length, 0, "an unrelated file changed: everything cached");
    await writeFile(join(ctx, "a.txt"), "a2");
    const changed = await build(df);
    assert.deepEqual(
      executed(changed, /COPY|RUN/).map((v) => v.name.replace(/^\[.*?\]\s*/, "")),
      ["COPY a.txt /a.txt", "RUN cat /a.txt > /a-copy"],
    );
  });

  it("never runs a stage the target does not need", async () => {
    const b = await build(
      `FROM ${world.busybox} AS unused\nRUN echo never\nFROM ${world.busybox}\nRUN echo used\n`,
    );
    assert.equal(executed(b, /echo never/).length, 0);
    assert.equal(executed(b, /echo used/).length, 1);
  });

  it("reports a failing RUN step with its exit code and keeps serving builds", async () => {
    await assert.rejects(
      build(`FROM ${world.busybox}\nRUN echo oops; exit 3\n`),
      /did not complete successfully: exit code: 3/,
    );
    const ok = await build(`FROM ${world.busybox}\nRUN true\n`);
    assert.equal(executed(ok, /RUN true/).length, 1);
  });

  it("exports the root filesystem to a local directory", async () => {
    await build(`FROM ${world.busybox}\nRUN mkdir -p /out && echo hi > /out/f\n`, {
      outputs: [{ type: "local", dest: join(out, "fs"), attrs: {} }],
    });
    assert.equal(await readFile(join(out, "fs", "out", "f"), "utf8"), "hi\n");
  });

  it("loads the image into dockerd, which runs it", async () => {
    const tag = `kiln-test-load:${Date.now()}`;
    await build(`FROM ${world.busybox}\nRUN echo loaded > /msg\nCMD ["cat", "/msg"]\n`, {
      outputs: [{ type: "docker", tar: true, names: [tag], attrs: {} }],
    });
    try {
      assert.equal(execFileSync("/usr/bin/docker", ["run", "--rm", tag], { encoding: "utf8" }), "loaded\n");
    } finally {
      execFileSync("/usr/bin/docker", ["rmi", "-f", tag], { stdio: "ignore" });
    }
  });

  it("pushes to the registry, where skopeo finds the image", async () => {
    const ref = `${world.registry}/kiln-test/engine-push:${Date.now()}`;
    const b = await build(`FROM ${world.busybox}\nRUN echo pushed > /p\n`, {
      outputs: [{ type: "image", names: [ref], push: true, attrs: {} }],
    });
    const info = JSON.parse(
      execFileSync("skopeo", ["inspect", "--tls-verify=false", `docker://${ref}`], { encoding: "utf8" }),
    );
    assert.equal(info.Digest, b.metadata["containerimage.digest"]);
  });
  it("adds a file from an HTTP URL with its checksum verified, and refuses a wrong checksum", async () => {
    const server = await HttpFileServer.start();
    try {
      server.setFile("/data.txt", "from http\n");
      const sum =
        "sha256:" + execFileSync("sha256sum", { input: "from http\n", encoding: "utf8" }).split(" ")[0];
      await build(`FROM ${world.busybox}\nADD --checksum=${sum} ${server.url("/data.txt")} /data.txt\n`, {
        outputs: [{ type: "local", dest: join(out, "fs"), attrs: {} }],
      });
      assert.equal(await readFile(join(out, "fs", "data.txt"), "utf8"), "from http\n");
      await assert.rejects(
        build(
          `FROM ${world.busybox}\nADD --checksum=sha256:${"0".repeat(64)} ${server.url("/data.txt")} /data.txt\n`,
        ),
        /sha256:0{64}/,
      );
    } finally {
      await server.stop();
    }
  });

  it("adds a git repository at a branch, and rebuilds when the branch moves", async () => {
    const root = await mkdtemp(join(tmpdir(), "kiln-git-"));
    const repo = await TestRepo.init(join(root, "repo.git"));
    await repo.write({ "hello.txt": "v1\n" });
    await repo.commit("one");
    const server = await GitHttpServer.start(root);
    try {
      const df = `FROM ${world.busybox}\nADD ${server.url("repo.git")}#main /src\nRUN cat /src/hello.txt > /seen\n`;
      await build(df, { outputs: [{ type: "local", dest: join(out, "a"), attrs: {} }] });
      assert.equal(await readFile(join(out, "a", "seen"), "utf8"), "v1\n");
      await repo.write({ "hello.txt": "v2\n" });
      await repo.commit("two");
      const again = await build(df, { outputs: [{ type: "local", dest: join(out, "b"), attrs: {} }] });
      assert.equal(await readFile(join(out, "b", "seen"), "utf8"), "v2\n");
      assert.equal(executed(again, /RUN cat/).length, 1);
    } finally {
      await server.stop();
      await rm(root, { recursive: true, force: true });
    }
  });

  it("gives a RUN step its secret as a file and an env var without leaving it anywhere", async () => {
    const value = `kiln-secret-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const secretFile = join(out, "token");
    await writeFile(secretFile, value);
    // The Dockerfile must not contain the value: it is the build's text, recorded in history.
    const df = `FROM ${world.busybox}\nRUN --mount=type=secret,id=tok cat /run/secrets/tok && wc -c < /run/secrets/tok > /len\nRUN --mount=type=secret,id=tok,env=TOK printf %s "$TOK" | wc -c > /envlen\n`;
    const b = await build(df, {
      secrets: [{ id: "tok", source: { kind: "file", path: secretFile } }],
      outputs: [
        { type: "oci", dest: join(out, "image.tar"), tar: true, names: [], attrs: {} },
        { type: "local", dest: join(out, "fs"), attrs: {} },
      ],
    });
    assert.equal(
      Number(await readFile(join(out, "fs", "len"), "utf8")),
      value.length,
      "the file held the secret",
    );
    assert.equal(
      Number(await readFile(join(out, "fs", "envlen"), "utf8")),
      value.length,
      "the env var held the secret",
    );
    const logs = b.events
      .filter((e) => e.type === "log")
      .map((e) => (e as { data: Buffer }).data.toString())
      .join("");
    assert.ok(logs.includes("****"), "the secret printed by the step is masked");
    assert.ok(!logs.includes(value), "the secret never reaches the progress stream");
    await rm(secretFile);
    // Every byte the engine kept, and every output: no trace of the value.
    const hits = execFileSync(
      "sh",
      ["-c", `grep -rl --binary-files=text -F '${value}' '${state}' '${out}' || true`],
      { encoding: "utf8" },
    );
    assert.equal(hits.trim(), "", `secret found in: ${hits}`);
    const layers = execFileSync(
      "sh",
      [
        "-c",
        `mkdir -p '${out}/x' && tar -xf '${out}/image.tar' -C '${out}/x' && for f in '${out}'/x/blobs/sha256/*; do (gzip -dc "$f" 2>/dev/null || cat "$f"); done | grep -c -F '${value}' || true`,
      ],
      { encoding: "utf8" },
    );
    assert.equal(layers.trim(), "0");
  });

  it("fails a step whose required secret was not given, naming the secret", async () => {
    await assert.rejects(
      build(
        `FROM ${world.busybox}\nRUN --mount=type=secret,id=missing,required=true cat /run/secrets/missing\n`,
      ),
      /secret missing: not found/,
    );
  });

  it("keeps a cache mount's content across builds and out of the image", async () => {
    const df = (n: number) =>
      `FROM ${world.busybox}\nRUN --mount=type=cache,target=/cache echo ${n} >> /cache/log && cp /cache/log /seen\n`;
    await build(df(1));
    await build(df(2), { outputs: [{ type: "local", dest: join(out, "fs"), attrs: {} }] });
    assert.equal(await readFile(join(out, "fs", "seen"), "utf8"), "1\n2\n");
    // The mount point may stay as an empty directory (as in BuildKit), but holds nothing of the cache.
    const left = await readdir(join(out, "fs", "cache")).catch(() => []);
    assert.deepEqual(left, [], "the cache mount's content is not in the result");
  });

  it("refuses RUN --network=host unless the build asks for it and the engine allows it", async () => {
    await assert.rejects(build(`FROM ${world.busybox}\nRUN --network=host true\n`), /--allow network\.host/);
    await assert.rejects(
      build(`FROM ${world.busybox}\nRUN --network=host true\n`, { allow: ["network.host"] }),
      /allow-insecure-entitlement network\.host/,
    );
  });
  it("builds two platforms into one index, running arm64 steps under QEMU and a $BUILDPLATFORM stage once", async () => {
    const ref = `${world.registry}/kiln-test/multi:${Date.now()}`;
    const df = [
      `FROM --platform=$BUILDPLATFORM ${world.busybox} AS build`,
      "RUN echo built-on-$(uname -m) > /build.txt",
      `FROM ${world.busybox}`,
      "ARG TARGETARCH",
      "COPY --from=build /build.txt /build.txt",
      'RUN echo "$TARGETARCH $(uname -m)" > /arch.txt',
      'CMD ["cat", "/arch.txt", "/build.txt"]',
      "",
    ].join("\n");
    const b = await build(df, {
      platforms: [
        { os: "linux", architecture: "amd64" },
        { os: "linux", architecture: "arm64" },
      ],
      outputs: [{ type: "image", names: [ref], push: true, attrs: {} }],
    });
    assert.equal(
      executed(b, /RUN echo built-on/).length,
      1,
      "the build-platform stage ran once for both platforms",
    );
    const index = JSON.parse(
      execFileSync("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${ref}`], {
        encoding: "utf8",
      }),
    );
    assert.deepEqual(
      index.manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture).sort(),
      ["amd64", "arm64"],
    );
    const arm = execFileSync(
      "/usr/bin/docker",
      ["run", "--rm", "--platform", "linux/arm64", "--pull", "always", ref],
      { encoding: "utf8" },
    );
    assert.equal(arm, "arm64 aarch64\nbuilt-on-x86_64\n");
    execFileSync("/usr/bin/docker", ["rmi", "-f", ref], { stdio: "ignore" });
  });
  it("uses another stage of the same Dockerfile for a target: named context", async () => {
    const df = `FROM ${world.busybox} AS builder\nRUN echo from-target > /t\nFROM base\nRUN cat /t > /seen\n`;
    await build(df, {
      buildContexts: { base: { kind: "target", target: "builder" } },
      outputs: [{ type: "local", dest: join(out, "fs"), attrs: {} }],
    });
    assert.equal(await readFile(join(out, "fs", "seen"), "utf8"), "from-target\n");
  });
});
