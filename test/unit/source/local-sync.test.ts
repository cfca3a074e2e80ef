import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  applySync,
  readSyncManifest,
  scanLocalDirectory,
  syncedCopyVersion,
  syncLocalContext,
} from "../../../src/source/local-sync.js";

describe("local context sync", () => {
  let src: string;
  let dest: string;
  beforeEach(async () => {
    src = await mkdtemp(join(tmpdir(), "kiln-sync-src-"));
    dest = join(await mkdtemp(join(tmpdir(), "kiln-sync-dest-")), "copy");
    await mkdir(join(src, "a"));
    await writeFile(join(src, "a", "one.txt"), "one");
    await writeFile(join(src, "two.txt"), "two");
    await writeFile(join(src, "secret.key"), "k");
  });
  afterEach(async () => {
    await rm(src, { recursive: true, force: true });
    await rm(join(dest, ".."), { recursive: true, force: true });
  });

  it("copies only changed files on a later sync", async () => {
    const first = await syncLocalContext(src, dest);
    assert.equal(first.copied, 3);
    const second = await syncLocalContext(src, dest);
    assert.equal(second.copied, 0, "nothing changed, nothing copied");
    await writeFile(join(src, "two.txt"), "TWO!");
    const third = await syncLocalContext(src, dest);
    assert.equal(third.copied, 1);
    assert.equal(await readFile(join(dest, "two.txt"), "utf8"), "TWO!");
  });

  it("notices a change that keeps the size when the mtime moves", async () => {
    await syncLocalContext(src, dest);
    await writeFile(join(src, "two.txt"), "owt");
    await utimes(join(src, "two.txt"), new Date(), new Date(Date.now() + 5000));
    await syncLocalContext(src, dest);
    assert.equal(await readFile(join(dest, "two.txt"), "utf8"), "owt");
  });

  it("removes files deleted from the context", async () => {
    await syncLocalContext(src, dest);
    await rm(join(src, "a"), { recursive: true });
    const stats = await syncLocalContext(src, dest);
    assert.ok(stats.removed >= 1);
    assert.deepEqual((await readdir(dest)).sort(), ["secret.key", "two.txt"]);
  });

  it("leaves out what .dockerignore patterns exclude, keeping exceptions", async () => {
    await syncLocalContext(src, dest, { exclude: ["*.key", "a", "!a/one.txt"] });
    assert.deepEqual((await readdir(dest)).sort(), ["a", "two.txt"]);
    assert.deepEqual(await readdir(join(dest, "a")), ["one.txt"]);
  });

  it("sends only the paths the build includes", async () => {
    await syncLocalContext(src, dest, { include: ["a"] });
    assert.deepEqual(await readdir(dest), ["a"]);
  });

  it("keeps its bookkeeping outside the synced copy", async () => {
    await syncLocalContext(src, dest);
    assert.ok(!(await readdir(dest)).some((n) => n.includes("manifest")));
  });

  it("keeps the copy's version when a sync finds nothing changed", async () => {
    await syncLocalContext(src, dest);
    const version = syncedCopyVersion(dest);
    assert.ok(version);
    await syncLocalContext(src, dest);
    assert.equal(syncedCopyVersion(dest), version);
  });

  it("gives the copy a new version when a sync changes it", async () => {
    await syncLocalContext(src, dest);
    const version = syncedCopyVersion(dest);
    await chmod(join(src, "a"), 0o700);
    await syncLocalContext(src, dest);
    assert.notEqual(syncedCopyVersion(dest), version);
  });

  it("leaves no version to trust after a sync that fails half-way, and recopies everything next time", async () => {
    await syncLocalContext(src, dest);
    await writeFile(join(src, "two.txt"), "changed, longer");
    const previous = await readSyncManifest(dest);
    const current = await scanLocalDirectory(src, {});
    await assert.rejects(
      applySync(dest, previous, current, async () => {
        throw new Error("connection lost");
      }),
      /connection lost/,
    );
    assert.equal(syncedCopyVersion(dest), undefined);
    const again = await syncLocalContext(src, dest);
    assert.equal(again.copied, 3, "a copy without a manifest is not trusted");
    assert.equal(await readFile(join(dest, "two.txt"), "utf8"), "changed, longer");
  });
});
