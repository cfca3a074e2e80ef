import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeFileAtomically } from "../../../src/fs/atomic-write.js";

describe("writeFileAtomically", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-atomic-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("replaces the file whole, with the mode asked for, and leaves no temp file", async () => {
    const path = join(dir, "f.json");
    await writeFileAtomically(path, "old");
    await writeFileAtomically(path, "new", { mode: 0o600, durable: true });
    assert.equal(await readFile(path, "utf8"), "new");
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ["f.json"]);
  });

  it("removes its temp file when the rename fails, leaving what was there", async () => {
    const path = join(dir, "taken");
    await mkdir(path);
    await writeFile(join(path, "kept"), "k");
    await assert.rejects(writeFileAtomically(path, "x"), /EISDIR|ENOTEMPTY|EEXIST/);
    assert.deepEqual(await readdir(dir), ["taken"]);
    assert.equal(await readFile(join(path, "kept"), "utf8"), "k");
  });
});
