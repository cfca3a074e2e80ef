import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BuildRequest, newBuildRequest } from "../../src/client/build-request.js";
import { type Engine, openEngine } from "../../src/engine/engine.js";
import { LocalSession } from "../../src/session/local-session.js";
import type { ProgressEvent, VertexEvent } from "../../src/solver/progress.js";
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
});
