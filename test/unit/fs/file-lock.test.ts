import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalCopyLocks } from "../../../src/engine/session-locals.js";
import { acquireFileLock } from "../../../src/fs/file-lock.js";

describe("file locks between processes (flock)", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-lock-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  // flock belongs to an open file description: a second open of the file, as another process
  // would make, conflicts with the first even inside one process.
  it("makes a second holder wait until the first releases, and names the holder on timeout", async () => {
    const path = join(dir, "x.lock");
    const release = await acquireFileLock(path);
    await assert.rejects(
      acquireFileLock(path, { timeoutMs: 1000, holder: "the test's first holder" }),
      /timed out after 1s waiting for the lock on .*x\.lock: the test's first holder holds it/,
    );
    release();
    const again = await acquireFileLock(path, { timeoutMs: 1000 });
    again();
  });

  it("locks a context copy against other processes' engines, not only this one's builds", async () => {
    const copy = join(dir, "local", "abc");
    await mkdir(join(dir, "local"));
    const other = await acquireFileLock(`${copy}.lock`);
    const locks = new LocalCopyLocks();
    let acquired = false;
    const waiting = locks.acquire(copy).then((release) => {
      acquired = true;
      return release;
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(acquired, false, "the copy is in use by another process");
    other();
    const release = await waiting;
    assert.equal(acquired, true);
    release();
  });
});
