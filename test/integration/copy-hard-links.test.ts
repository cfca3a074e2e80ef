import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newBuildRequest } from "../../src/client/build-request.js";
import { type Engine, openEngine } from "../../src/engine/engine.js";
import { LocalSession } from "../../src/session/local-session.js";
import { loadWorld } from "../support/world.js";

const world = loadWorld();

/** The engine-side copies of synced contexts (directories under state/local). */
async function syncedCopies(state: string): Promise<string[]> {
  const names = await readdir(join(state, "local"));
  return names.filter((n) => !n.includes(".")).map((n) => join(state, "local", n));
}

describe("COPY from the build context as hard links into the snapshot", function () {
  this.timeout(180_000);
  let state: string;
  let engine: Engine;
  let ctx: string;
  let out: string;

  before(async () => {
    state = await mkdtemp(join(tmpdir(), "kiln-links-state-"));
    engine = await openEngine({ stateDir: state });
  });
  after(async () => {
    await engine.close();
    await rm(state, { recursive: true, force: true });
  });
  beforeEach(async () => {
    ctx = await mkdtemp(join(tmpdir(), "kiln-links-ctx-"));
    out = await mkdtemp(join(tmpdir(), "kiln-links-out-"));
    await mkdir(join(ctx, "sub"));
    await writeFile(join(ctx, "sub", "data.txt"), "original\n");
    await writeFile(join(ctx, "top.txt"), "top\n");
  });
  afterEach(async () => {
    await rm(ctx, { recursive: true, force: true });
    await rm(out, { recursive: true, force: true });
  });

  async function build(dockerfile: string, outputs = true): Promise<void> {
    await writeFile(join(ctx, "Dockerfile"), dockerfile);
    const req = newBuildRequest(ctx, {
      dockerfileText: dockerfile,
      outputs: outputs ? [{ type: "local", dest: join(out, "rootfs"), attrs: {} }] : [],
    });
    await engine.build(req, new LocalSession({ request: req }), {});
  }

  it("shares the context copy's inodes instead of copying the bytes", async () => {
    await build(`FROM ${world.busybox}\nCOPY . /src\n`, false);
    const [copy] = await syncedCopies(state);
    assert.ok(copy, "the context was synced into the engine");
    const st = await stat(join(copy!, "sub", "data.txt"));
    assert.equal(st.nlink, 2, "the copy's file is also linked from the COPY snapshot");
  });

  it("keeps the context copy intact when a later RUN step changes a copied file in place", async () => {
    await build(
      `FROM ${world.busybox}\nCOPY . /src\nRUN echo appended >> /src/sub/data.txt && cat /src/sub/data.txt > /seen.txt\n`,
    );
    assert.equal(await readFile(join(out, "rootfs", "seen.txt"), "utf8"), "original\nappended\n");
    const [copy] = await syncedCopies(state);
    assert.equal(await readFile(join(copy!, "sub", "data.txt"), "utf8"), "original\n");
    // A second build over the same copy sees the context as it is, not the RUN step's change.
    await rm(join(out, "rootfs"), { recursive: true, force: true });
    await build(`FROM ${world.busybox}\nCOPY sub/data.txt /again.txt\n`);
    assert.equal(await readFile(join(out, "rootfs", "again.txt"), "utf8"), "original\n");
  });

  it("gives copied files the mode, owner and times of a real copy", async () => {
    await build(
      `FROM ${world.busybox}\nCOPY . /src\nRUN stat -c '%a %u:%g %Y' /src/sub/data.txt > /meta.txt\n`,
    );
    const src = await stat(join(ctx, "sub", "data.txt"));
    const [mode, owner, mtime] = (await readFile(join(out, "rootfs", "meta.txt"), "utf8")).trim().split(" ");
    assert.equal(mode, (src.mode & 0o777).toString(8));
    assert.equal(owner, "0:0");
    assert.equal(Number(mtime), Math.floor(src.mtimeMs / 1000));
  });

  it("copies instead of linking when --chown changes the owner", async () => {
    await build(
      `FROM ${world.busybox}\nCOPY --chown=1000:1000 . /owned\nRUN stat -c '%u:%g' /owned/top.txt > /owner.txt\n`,
    );
    assert.equal((await readFile(join(out, "rootfs", "owner.txt"), "utf8")).trim(), "1000:1000");
    const copies = await syncedCopies(state);
    for (const copy of copies) {
      const st = await stat(join(copy, "top.txt")).catch(() => undefined);
      if (st) assert.equal(st.uid, 0, "the engine's context copy keeps root as owner");
    }
  });

  it("exports a layer with regular files for linked ones, which dockerd loads and runs", async () => {
    const dockerfile = `FROM ${world.busybox}\nCOPY . /src\nCMD ["cat", "/src/sub/data.txt"]\n`;
    await writeFile(join(ctx, "Dockerfile"), dockerfile);
    const tag = `kiln-test/copy-links:${Date.now()}`;
    const req = newBuildRequest(ctx, {
      dockerfileText: dockerfile,
      outputs: [{ type: "docker", dest: join(out, "image.tar"), tar: true, names: [tag], attrs: {} }],
    });
    await engine.build(req, new LocalSession({ request: req }), {});
    execFileSync("/usr/bin/docker", ["load", "-i", join(out, "image.tar")], { stdio: "pipe" });
    try {
      const printed = execFileSync("/usr/bin/docker", ["run", "--rm", tag], { encoding: "utf8" });
      assert.equal(printed, "original\n");
    } finally {
      execFileSync("/usr/bin/docker", ["rmi", tag], { stdio: "pipe" });
    }
  });
});
