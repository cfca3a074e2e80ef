// A build-context-sized tree (5,000 files, 40 MB) through copy and checksum, end to end on the
// real filesystem: everything arrives intact, and a rebuild's checksum re-hashes only what changed.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { contentChecksum, type FileHashCache } from "../../src/fs/checksum.js";
import { executeFileAction } from "../../src/worker/fileop/execute.js";
import { copyAction } from "../unit/fileop/copy-helpers.js";
import { TempDirs } from "../unit/fileop/tree-fixtures.js";

const DIRS = 100;
const FILES_PER_DIR = 50;
const FILE_SIZE = 8 * 1024;

describe("file actions on a 5,000-file, 40 MB tree", function () {
  this.timeout(120_000);
  const temp = new TempDirs();
  let src: string;
  let dest: string;

  const fileBytes = (d: number, f: number) =>
    createHash("sha256")
      .update(`${d}/${f}`)
      .digest()
      .toString("hex")
      .repeat(FILE_SIZE / 64);

  before(async () => {
    src = await temp.make();
    dest = await temp.make();
    for (let d = 0; d < DIRS; d++) {
      await mkdir(join(src, "ctx", `d${d}`), { recursive: true });
      await Promise.all(
        Array.from({ length: FILES_PER_DIR }, (_, f) =>
          writeFile(join(src, "ctx", `d${d}`, `f${f}`), fileBytes(d, f)),
        ),
      );
    }
  });
  after(() => temp.cleanup());

  it("copies every file with its content", async () => {
    await executeFileAction(copyAction({ src: "/ctx", dest: "/app/" }), { srcRoot: src, destRoot: dest });
    for (let d = 0; d < DIRS; d += 7)
      for (let f = 0; f < FILES_PER_DIR; f += 3)
        assert.equal(await readFile(join(dest, "app", `d${d}`, `f${f}`), "utf8"), fileBytes(d, f));
    assert.equal(await contentChecksum(join(dest, "app")), await contentChecksum(join(src, "ctx")));
  });

  it("re-hashes only the changed file on a second checksum with a cache", async () => {
    const cache: FileHashCache = new Map();
    const first = await contentChecksum(src, { path: "/ctx", fileHashCache: cache });
    assert.equal(cache.size, DIRS * FILES_PER_DIR);
    const records = new Map(cache);
    const changed = join(src, "ctx/d3/f4");
    await writeFile(changed, "new content");
    const second = await contentChecksum(src, { path: "/ctx", fileHashCache: cache });
    assert.notEqual(second, first);
    const rehashed = [...cache]
      .filter(([path, record]) => records.get(path) !== record)
      .map(([path]) => path);
    assert.deepEqual(rehashed, [changed]);
  });
});
