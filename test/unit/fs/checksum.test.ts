import assert from "node:assert/strict";
import { chmod, lchown, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { contentChecksum, type FileHashCache, PathNotFoundError } from "../../../src/fs/checksum.js";
import { TempDirs, writeTree } from "../fileop/tree-fixtures.js";

describe("contentChecksum", () => {
  const temp = new TempDirs();
  let root: string;
  beforeEach(async () => {
    root = await temp.make();
    await writeTree(root, {
      "app/main.js": "console.log(1)",
      "app/lib/util.js": "export {}",
      "app/link": { symlink: "main.js" },
      "docs/readme.md": "docs",
    });
  });
  afterEach(() => temp.cleanup());

  it("gives the same digest for the same tree", async () => {
    assert.equal(
      await contentChecksum(root, { path: "/app" }),
      await contentChecksum(root, { path: "/app" }),
    );
  });

  it("ignores modification times", async () => {
    const before = await contentChecksum(root, { path: "/app" });
    await utimes(join(root, "app/main.js"), 1000, 1000);
    assert.equal(await contentChecksum(root, { path: "/app" }), before);
  });

  it("changes when a selected file's content changes", async () => {
    const before = await contentChecksum(root, { path: "/app" });
    await writeFile(join(root, "app/lib/util.js"), "export const x = 1");
    assert.notEqual(await contentChecksum(root, { path: "/app" }), before);
  });

  it("changes when a selected file's mode changes", async () => {
    const before = await contentChecksum(root, { path: "/app" });
    await chmod(join(root, "app/main.js"), 0o755);
    assert.notEqual(await contentChecksum(root, { path: "/app" }), before);
  });

  it("changes when a selected file's owner changes", async () => {
    const before = await contentChecksum(root, { path: "/app" });
    await lchown(join(root, "app/main.js"), 1000, 1000);
    assert.notEqual(await contentChecksum(root, { path: "/app" }), before);
  });

  it("changes when a symlink's target changes", async () => {
    const before = await contentChecksum(root, { path: "/app" });
    await writeTree(root, { "app/link2": { symlink: "x" } });
    const withNew = await contentChecksum(root, { path: "/app" });
    assert.notEqual(withNew, before);
  });

  it("does not change when a file outside the selection changes", async () => {
    const before = await contentChecksum(root, { path: "/app" });
    await writeFile(join(root, "docs/readme.md"), "changed");
    assert.equal(await contentChecksum(root, { path: "/app" }), before);
  });

  it("does not change when an excluded file changes, but does for an included one", async () => {
    const opts = { path: "/app", excludePatterns: ["lib"] };
    const before = await contentChecksum(root, opts);
    await writeFile(join(root, "app/lib/util.js"), "changed");
    assert.equal(await contentChecksum(root, opts), before);
    await writeFile(join(root, "app/main.js"), "changed");
    assert.notEqual(await contentChecksum(root, opts), before);
  });

  it("covers only wildcard matches", async () => {
    const before = await contentChecksum(root, { path: "/app/*.js" });
    await writeFile(join(root, "app/lib/util.js"), "changed");
    assert.equal(await contentChecksum(root, { path: "/app/*.js" }), before);
  });

  it("names the selector when it matches nothing", async () => {
    await assert.rejects(contentChecksum(root, { path: "/app/*.nope" }), /"\/app\/\*\.nope": not found/);
    await assert.rejects(contentChecksum(root, { path: "/missing" }), PathNotFoundError);
  });

  it("re-hashes only files whose stat changed when given a cache", async () => {
    const cache: FileHashCache = new Map();
    await contentChecksum(root, { path: "/app", fileHashCache: cache });
    const utilPath = join(root, "app/lib/util.js");
    const mainPath = join(root, "app/main.js");
    const mainRecord = cache.get(mainPath);
    assert.ok(mainRecord);
    await writeFile(utilPath, "changed content");
    const after = await contentChecksum(root, { path: "/app", fileHashCache: cache });
    assert.equal(cache.get(mainPath), mainRecord, "unchanged file keeps its cached record");
    assert.notEqual(cache.get(utilPath)?.size, 9);
    assert.equal(after, await contentChecksum(root, { path: "/app" }));
  });

  it("trusts a cached hash only while size, times and inode are unchanged", async () => {
    const cache: FileHashCache = new Map();
    const mainPath = join(root, "app/main.js");
    await contentChecksum(root, { path: "/app", fileHashCache: cache });
    const record = cache.get(mainPath)!;
    cache.set(mainPath, { ...record, sha256: "0".repeat(64) });
    const poisoned = await contentChecksum(root, { path: "/app", fileHashCache: cache });
    assert.notEqual(poisoned, await contentChecksum(root, { path: "/app" }), "a matching stat is trusted");
    await writeFile(mainPath, "console.log(2)");
    assert.equal(
      await contentChecksum(root, { path: "/app", fileHashCache: cache }),
      await contentChecksum(root, { path: "/app" }),
    );
  });

  it("keeps a cached hash across a ctime change only for trees whose files are replaced, never modified", async () => {
    const cache: FileHashCache = new Map();
    const mainPath = join(root, "app/main.js");
    await contentChecksum(root, { path: "/app", fileHashCache: cache });
    cache.set(mainPath, { ...cache.get(mainPath)!, sha256: "0".repeat(64), ctimeMs: 1 });
    const honest = await contentChecksum(root, { path: "/app" });
    assert.equal(await contentChecksum(root, { path: "/app", fileHashCache: cache }), honest);
    cache.set(mainPath, { ...cache.get(mainPath)!, sha256: "0".repeat(64), ctimeMs: 1 });
    const trusted = await contentChecksum(root, {
      path: "/app",
      fileHashCache: cache,
      filesReplacedNotModified: true,
    });
    assert.notEqual(trusted, honest, "the record was used although only the ctime differs");
  });
});
