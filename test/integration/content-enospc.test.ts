// The content store on a full disk: a real 1 MiB tmpfs mounted as the state directory.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileContentStore } from "../../src/content/store.js";
import { sha256Digest } from "../../src/oci/digest.js";

async function* chunksOf(data: Buffer, chunkSize: number): AsyncIterable<Buffer> {
  for (let i = 0; i < data.length; i += chunkSize) yield data.subarray(i, i + chunkSize);
}

describe("FileContentStore on a full filesystem (1 MiB tmpfs)", () => {
  let stateDir: string;
  let mounted = false;

  before(async function () {
    stateDir = await mkdtemp(join(tmpdir(), "kiln-enospc-"));
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", stateDir], { stdio: "pipe" });
      mounted = true;
    } catch {
      await rm(stateDir, { recursive: true, force: true });
      // Mounting needs root (CAP_SYS_ADMIN); without it there is no real full disk to test against.
      this.skip();
    }
  });

  after(async () => {
    if (mounted) execFileSync("umount", [stateDir]);
    await rm(stateDir, { recursive: true, force: true });
  });

  it("fails a blob larger than the free space with ENOSPC and leaves no partial blob or temp file", async () => {
    const store = await FileContentStore.open(stateDir);
    const big = randomBytes(2 * 1024 * 1024);
    await assert.rejects(store.write(chunksOf(big, 64 * 1024)), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, "ENOSPC");
      assert.match(err.message, /no space left to store a blob in .*kiln prune/);
      return true;
    });
    assert.deepEqual(await readdir(join(stateDir, "content", "blobs", "sha256")), []);
    assert.deepEqual(await readdir(join(stateDir, "content", "ingest")), []);
    assert.equal(await store.has(sha256Digest(big)), false);
  });

  it("stores blobs normally again once the failed write has freed its space", async () => {
    const store = await FileContentStore.open(stateDir);
    const small = randomBytes(256 * 1024);
    const info = await store.writeBytes(small);
    assert.ok((await store.readBytes(info.digest)).equals(small));
  });
});
