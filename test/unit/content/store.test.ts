import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { BlobNotFoundError, DigestMismatchError, SizeMismatchError } from "../../../src/content/errors.js";
import { FileContentStore } from "../../../src/content/store.js";
import { type Digest, sha256Digest } from "../../../src/oci/digest.js";

async function* chunksOf(data: Buffer, chunkSize: number): AsyncIterable<Buffer> {
  for (let i = 0; i < data.length; i += chunkSize) {
    await new Promise((r) => setImmediate(r));
    yield data.subarray(i, i + chunkSize);
  }
}

async function* failingAfter(data: Buffer, err: Error): AsyncIterable<Buffer> {
  yield data;
  throw err;
}

describe("FileContentStore", () => {
  let stateDir: string;
  let store: FileContentStore;

  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "kiln-content-"));
    store = await FileContentStore.open(stateDir);
  });
  afterEach(async () => {
    await rm(stateDir, { recursive: true, force: true });
  });

  const ingestFiles = () => readdir(join(stateDir, "content", "ingest"));
  const blobFiles = () => readdir(join(stateDir, "content", "blobs", "sha256"));

  it("stores a blob at blobs/sha256/<hex> and returns its digest and size", async () => {
    const info = await store.writeBytes("hello");
    assert.equal(info.digest, sha256Digest("hello"));
    assert.equal(info.size, 5);
    const path = join(stateDir, "content", "blobs", "sha256", info.digest.slice("sha256:".length));
    assert.equal(store.pathOf(info.digest), path);
    assert.equal(await readFile(path, "utf8"), "hello");
    assert.deepEqual(await ingestFiles(), []);
  });

  it("streams a multi-megabyte blob in and reads the same bytes back", async () => {
    const data = randomBytes(5 * 1024 * 1024 + 17);
    const info = await store.write(chunksOf(data, 256 * 1024));
    assert.equal(info.digest, sha256Digest(data));
    assert.equal(info.size, data.length);
    assert.ok((await buffer(store.read(info.digest))).equals(data));
    assert.ok((await store.readBytes(info.digest)).equals(data));
  });

  it("streams a blob larger than the early-flush interval in and reads the same bytes back", async () => {
    const data = randomBytes(40 * 1024 * 1024 + 5);
    const info = await store.write(chunksOf(data, 1024 * 1024), {
      expected: sha256Digest(data),
      expectedSize: data.length,
    });
    assert.equal(info.size, data.length);
    assert.ok((await buffer(store.read(info.digest))).equals(data));
  });

  it("stores a source that verifies itself under the expected digest, once it ends", async () => {
    const data = randomBytes(100_000);
    const info = await store.write(Readable.from([data]), {
      expected: sha256Digest(data),
      expectedSize: data.length,
      sourceVerified: true,
    });
    assert.equal(info.digest, sha256Digest(data));
    assert.ok((await store.readBytes(info.digest)).equals(data));
  });

  it("keeps nothing of a self-verifying source that fails at its end (its digest did not match)", async () => {
    const data = randomBytes(100_000);
    const mismatch = new Error("content has another digest");
    const write = store.write(failingAfter(data, mismatch), {
      expected: sha256Digest(data),
      expectedSize: data.length,
      sourceVerified: true,
    });
    await assert.rejects(write, (err) => err === mismatch);
    assert.deepEqual(await blobFiles(), []);
    assert.deepEqual(await ingestFiles(), []);
  });

  it("still checks the size of a self-verifying source", async () => {
    const data = randomBytes(1000);
    const write = store.write(Readable.from([data]), {
      expected: sha256Digest(data),
      expectedSize: 999,
      sourceVerified: true,
    });
    await assert.rejects(write, SizeMismatchError);
    assert.deepEqual(await blobFiles(), []);
  });

  it("refuses a self-verifying source without an expected digest and size to trust", async () => {
    await assert.rejects(store.writeBytes("x", { sourceVerified: true }), TypeError);
    assert.deepEqual(await ingestFiles(), []);
  });

  it("accepts content that matches the expected digest and size", async () => {
    const data = Buffer.from("layer bytes");
    const info = await store.write(Readable.from([data]), {
      expected: sha256Digest(data),
      expectedSize: data.length,
    });
    assert.equal(info.digest, sha256Digest(data));
  });

  it("rejects content whose digest differs from the expected one and leaves nothing behind", async () => {
    const expected = sha256Digest("something else");
    await assert.rejects(store.writeBytes("actual content", { expected }), (err: unknown) => {
      assert.ok(err instanceof DigestMismatchError);
      assert.equal(err.expected, expected);
      assert.equal(err.actual, sha256Digest("actual content"));
      return true;
    });
    assert.deepEqual(await blobFiles(), []);
    assert.deepEqual(await ingestFiles(), []);
  });

  it("stops a write as soon as it exceeds the expected size and leaves nothing behind", async () => {
    const data = randomBytes(1024 * 1024);
    let chunksRead = 0;
    const source = (async function* () {
      for await (const c of chunksOf(data, 1024)) {
        chunksRead++;
        yield c;
      }
    })();
    await assert.rejects(store.write(source, { expectedSize: 2048 }), SizeMismatchError);
    assert.ok(chunksRead <= 3, `read ${chunksRead} chunks after the limit was passed`);
    assert.deepEqual(await blobFiles(), []);
    assert.deepEqual(await ingestFiles(), []);
  });

  it("rejects content shorter than the expected size", async () => {
    await assert.rejects(store.writeBytes("short", { expectedSize: 6 }), SizeMismatchError);
    assert.deepEqual(await blobFiles(), []);
  });

  it("passes on a source stream's error and removes the partial temp file", async () => {
    const boom = new Error("connection reset");
    await assert.rejects(store.write(failingAfter(randomBytes(100_000), boom)), (err) => err === boom);
    assert.deepEqual(await blobFiles(), []);
    assert.deepEqual(await ingestFiles(), []);
  });

  it("cancels a write when its signal aborts and removes the temp file", async () => {
    const ac = new AbortController();
    const source = (async function* () {
      yield randomBytes(1000);
      ac.abort();
      yield randomBytes(1000);
    })();
    await assert.rejects(store.write(source, { signal: ac.signal }), { name: "AbortError" });
    assert.deepEqual(await blobFiles(), []);
    assert.deepEqual(await ingestFiles(), []);
  });

  it("treats a write of an existing blob as a no-op that still consumes the input", async () => {
    const data = randomBytes(300_000);
    const first = await store.writeBytes(data);
    const before = await stat(store.pathOf(first.digest));
    const source = Readable.from(chunksOf(data, 10_000));
    const second = await store.write(source, { expected: first.digest });
    assert.deepEqual(second, first);
    assert.equal(source.readableEnded, true);
    assert.equal((await stat(store.pathOf(first.digest))).ino, before.ino);
    assert.deepEqual(await ingestFiles(), []);
  });

  it("lets many concurrent writers of the same content succeed with a single blob", async () => {
    const data = randomBytes(2 * 1024 * 1024);
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        store.write(chunksOf(data, 32 * 1024 + i), i % 2 === 0 ? { expected: sha256Digest(data) } : {}),
      ),
    );
    for (const r of results) assert.deepEqual(r, { digest: sha256Digest(data), size: data.length });
    assert.deepEqual(await blobFiles(), [sha256Digest(data).slice(7)]);
    assert.deepEqual(await ingestFiles(), []);
    assert.ok((await store.readBytes(sha256Digest(data))).equals(data));
  });

  it("honours a sha512 expected digest", async () => {
    const data = Buffer.from("sha512 content");
    const expected = `sha512:${createHash("sha512").update(data).digest("hex")}` as Digest;
    const info = await store.writeBytes(data, { expected });
    assert.equal(info.digest, expected);
    assert.ok((await store.readBytes(expected)).equals(data));
    assert.deepEqual(
      (await collect(store.list())).map((b) => b.digest),
      [expected],
    );
  });

  it("fails a read at the end when the bytes on disk no longer match the digest", async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const { digest } = await store.writeBytes(data);
    const tampered = Buffer.from(data);
    tampered[tampered.length - 1]! ^= 0xff;
    await writeFile(store.pathOf(digest), tampered);
    let received = 0;
    const stream = store.read(digest);
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) received += (chunk as Buffer).length;
      })(),
      DigestMismatchError,
    );
    assert.equal(received, data.length, "all bytes are delivered before the error");
    await assert.rejects(store.readBytes(digest), DigestMismatchError);
  });

  it("reports a missing blob as BlobNotFoundError from read and readBytes", async () => {
    const digest = sha256Digest("never written");
    await assert.rejects(buffer(store.read(digest)), BlobNotFoundError);
    await assert.rejects(store.readBytes(digest), BlobNotFoundError);
  });

  it("answers has and info, lists blobs, and deletes them idempotently", async () => {
    const a = await store.writeBytes("a");
    const b = await store.writeBytes("bb");
    assert.equal(await store.has(a.digest), true);
    assert.deepEqual(await store.info(b.digest), b);
    const listed = await collect(store.list());
    assert.deepEqual(
      listed.sort((x, y) => x.digest.localeCompare(y.digest)),
      [a, b].sort((x, y) => x.digest.localeCompare(y.digest)),
    );
    await store.delete(a.digest);
    await store.delete(a.digest);
    assert.equal(await store.has(a.digest), false);
    assert.equal(await store.info(a.digest), undefined);
  });

  it("rejects an invalid digest instead of building a path from it", () => {
    assert.throws(() => store.pathOf("sha256:../../etc/passwd" as Digest), /invalid digest/);
  });

  it("refreshes the modification time of a blob that a write finds already stored", async () => {
    const { digest } = await store.writeBytes("old blob");
    const long_ago = new Date(Date.now() - 10 * 24 * 3600_000);
    await utimes(store.pathOf(digest), long_ago, long_ago);
    await store.writeBytes("old blob");
    assert.ok((await stat(store.pathOf(digest))).mtimeMs > Date.now() - 60_000);
  });

  describe("ingest cleanup", () => {
    const ingest = (name: string) => join(stateDir, "content", "ingest", name);

    it("removes temp files of dead writers when the store opens", async () => {
      const dead = await deadPid();
      await writeFile(ingest(`${dead}.abc`), "partial");
      await writeFile(ingest("garbage-name"), "partial");
      await FileContentStore.open(stateDir);
      assert.deepEqual(await ingestFiles(), []);
    });

    it("removes this process's temp files that no write is using, and keeps a live process's", async () => {
      await writeFile(ingest(`${process.pid}.stale`), "partial");
      await writeFile(ingest(`${process.ppid}.inflight`), "partial");
      assert.equal(await store.cleanupIngest(), 1);
      assert.deepEqual(await ingestFiles(), [`${process.ppid}.inflight`]);
    });

    it("does not remove the temp file of a write in progress in this process", async () => {
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const source = (async function* () {
        yield Buffer.from("first half ");
        await gate;
        yield Buffer.from("second half");
      })();
      const writing = store.write(source);
      while ((await ingestFiles()).length === 0) await new Promise((r) => setTimeout(r, 5));
      assert.equal(await store.cleanupIngest(), 0);
      release();
      const info = await writing;
      assert.equal(info.digest, sha256Digest("first half second half"));
    });
  });
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn("true");
  await new Promise((r) => child.on("exit", r));
  return child.pid!;
}
