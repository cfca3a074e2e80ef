// The on-disk content store: immutable blobs at `<root>/blobs/<alg>/<hex>`, written through
// `<root>/ingest/` temp files so that a blob path only ever holds complete, verified bytes.
import { createHash, randomBytes } from "node:crypto";
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  unlink,
  utimes,
} from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { type Digest, digestAlgorithm, digestHex, isDigest, parseDigest } from "../oci/digest.js";
import { BlobNotFoundError, DigestMismatchError, SizeMismatchError } from "./errors.js";
import type { BlobInfo, ContentStore, WriteOptions } from "./types.js";

const ALGORITHMS = ["sha256", "sha512"] as const;
/** Bytes gathered from the source before one write to the file. */
const WRITE_BATCH = 1 << 20;
/** Bytes written between the flushes that start a large blob's way to the disk early. */
const FLUSH_EVERY = 32 << 20;
const HEX_RE = { sha256: /^[a-f0-9]{64}$/, sha512: /^[a-f0-9]{128}$/ } as const;

/**
 * Ingest files being written by this process, across all store instances: `cleanupIngest` must
 * not remove them even though their names carry our own (live) pid.
 */
const activeIngests = new Set<string>();

export class FileContentStore implements ContentStore {
  /** The store's directory, `<stateDir>/content`. */
  readonly root: string;
  private readonly ingestDir: string;

  constructor(stateDir: string) {
    this.root = join(stateDir, "content");
    this.ingestDir = join(this.root, "ingest");
  }

  /** Creates the directories and removes ingest files a crashed writer left behind. */
  static async open(stateDir: string): Promise<FileContentStore> {
    const store = new FileContentStore(stateDir);
    await mkdir(store.ingestDir, { recursive: true });
    for (const alg of ALGORITHMS) await mkdir(join(store.root, "blobs", alg), { recursive: true });
    await store.cleanupIngest();
    return store;
  }

  /**
   * Removes ingest files whose writer is gone: files of dead processes, and files of this process
   * that no write is using (a restarted engine can get its predecessor's pid, e.g. pid 1 in a
   * container). Files of other live processes are left alone. Returns how many were removed.
   */
  async cleanupIngest(): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.ingestDir);
    } catch (err) {
      if (isErrno(err, "ENOENT")) return 0;
      throw err;
    }
    let removed = 0;
    for (const name of names) {
      const path = join(this.ingestDir, name);
      const pid = Number.parseInt(name.split(".")[0] ?? "", 10);
      const stale =
        !Number.isInteger(pid) ||
        pid <= 0 ||
        (pid === process.pid ? !activeIngests.has(path) : !processAlive(pid));
      if (!stale) continue;
      await rm(path, { force: true, recursive: true });
      removed++;
    }
    return removed;
  }

  pathOf(digest: Digest): string {
    const d = parseDigest(digest);
    return join(this.root, "blobs", digestAlgorithm(d), digestHex(d));
  }

  async has(digest: Digest): Promise<boolean> {
    return (await this.info(digest)) !== undefined;
  }

  async info(digest: Digest): Promise<BlobInfo | undefined> {
    try {
      const st = await stat(this.pathOf(digest));
      return { digest, size: st.size };
    } catch (err) {
      if (isErrno(err, "ENOENT")) return undefined;
      throw err;
    }
  }

  read(digest: Digest): Readable {
    return Readable.from(this.verifiedChunks(digest), { objectMode: false });
  }

  async readBytes(digest: Digest): Promise<Buffer> {
    const path = this.pathOf(digest);
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (err) {
      if (isErrno(err, "ENOENT")) throw new BlobNotFoundError(digest, this.root);
      throw err;
    }
    const actual = `${digestAlgorithm(digest)}:${createHash(digestAlgorithm(digest)).update(data).digest("hex")}`;
    if (actual !== digest) {
      throw new DigestMismatchError(
        digest,
        actual as Digest,
        `blob file ${path} is corrupt; delete it and pull or build again`,
      );
    }
    return data;
  }

  async write(source: Readable | AsyncIterable<Uint8Array>, opts: WriteOptions = {}): Promise<BlobInfo> {
    const expected = opts.expected === undefined ? undefined : parseDigest(opts.expected);
    const expectedSize = opts.expectedSize;
    if (expectedSize !== undefined && (!Number.isSafeInteger(expectedSize) || expectedSize < 0)) {
      throw new RangeError(`expected size must be a non-negative integer, got ${expectedSize}`);
    }
    opts.signal?.throwIfAborted();

    if (expected !== undefined) {
      const existing = await this.info(expected);
      if (existing) {
        // The bytes are already here; consume the input so a producer (e.g. an HTTP body) is not left hanging.
        await drain(source, opts.signal);
        if (expectedSize !== undefined && existing.size !== expectedSize) {
          throw new SizeMismatchError(expectedSize, existing.size, `blob ${expected}`);
        }
        await this.markFresh(expected);
        return existing;
      }
    }

    if (opts.sourceVerified && (expected === undefined || expectedSize === undefined)) {
      throw new TypeError("a write of a verified source must name the expected digest and size");
    }
    const alg = expected ? digestAlgorithm(expected) : "sha256";
    const ingestPath = join(this.ingestDir, `${process.pid}.${randomBytes(12).toString("hex")}`);
    activeIngests.add(ingestPath);
    let fh: FileHandle | undefined;
    let flushing: Promise<void> | undefined;
    try {
      fh = await open(ingestPath, "wx", 0o644);
      const hash = opts.sourceVerified ? undefined : createHash(alg);
      let size = 0;
      let unflushed = 0;
      // Network reads come in 64 KiB pieces; written as they come, a large blob would take a
      // thousand trips through the thread pool where a few hundred do. They are copied into the
      // batch as they arrive, so a source that reuses its buffers cannot change them meanwhile.
      let batch: Buffer | undefined;
      let batched = 0;
      const write = async (file: FileHandle, buf: Buffer) => {
        await writeFully(file, buf);
        unflushed += buf.length;
        // The bytes go to the disk while more arrive, so the fsync at the end waits for the last
        // stretch only, not for the whole of a large blob.
        if (unflushed >= FLUSH_EVERY && flushing === undefined) {
          unflushed = 0;
          flushing = file.datasync().finally(() => {
            flushing = undefined;
          });
        }
      };
      const writeBatch = async (file: FileHandle) => {
        await write(file, batch!.subarray(0, batched));
        batched = 0;
      };
      for await (const chunk of source) {
        opts.signal?.throwIfAborted();
        const buf = toBuffer(chunk);
        size += buf.length;
        if (expectedSize !== undefined && size > expectedSize) {
          throw new SizeMismatchError(expectedSize, size, `writing blob ${expected ?? ""}`.trimEnd());
        }
        hash?.update(buf);
        if (batched + buf.length > WRITE_BATCH && batched > 0) await writeBatch(fh);
        if (buf.length >= WRITE_BATCH) {
          await write(fh, buf);
          continue;
        }
        batch ??= Buffer.allocUnsafe(Math.min(WRITE_BATCH, expectedSize ?? WRITE_BATCH));
        buf.copy(batch, batched);
        batched += buf.length;
      }
      if (batched > 0) await writeBatch(fh);
      opts.signal?.throwIfAborted();
      await flushing;
      await fh.sync();
      await fh.close();
      fh = undefined;

      const digest = hash ? (`${alg}:${hash.digest("hex")}` as Digest) : expected!;
      if (expected !== undefined && digest !== expected) {
        throw new DigestMismatchError(expected, digest, "writing blob");
      }
      if (expectedSize !== undefined && size !== expectedSize) {
        throw new SizeMismatchError(expectedSize, size, `writing blob ${digest}`);
      }
      const blobPath = this.pathOf(digest);
      if (await this.has(digest)) {
        await unlink(ingestPath);
        await this.markFresh(digest);
      } else {
        // rename() is atomic: a concurrent writer of the same digest replaces identical bytes.
        await rename(ingestPath, blobPath);
        await fsyncDir(join(this.root, "blobs", alg));
      }
      return { digest, size };
    } catch (err) {
      await flushing?.catch(() => {});
      await fh?.close().catch(() => {});
      await rm(ingestPath, { force: true });
      if (source instanceof Readable && !source.readableEnded) source.destroy();
      throw explainWriteError(err, this.root);
    } finally {
      activeIngests.delete(ingestPath);
    }
  }

  async writeBytes(data: Uint8Array | string, opts?: WriteOptions): Promise<BlobInfo> {
    const buf = typeof data === "string" ? Buffer.from(data, "utf8") : toBuffer(data);
    return this.write(oneChunk(buf), opts);
  }

  async delete(digest: Digest): Promise<void> {
    await rm(this.pathOf(digest), { force: true });
  }

  async *list(): AsyncIterable<BlobInfo> {
    for (const alg of ALGORITHMS) {
      const dir = join(this.root, "blobs", alg);
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (err) {
        if (isErrno(err, "ENOENT")) continue;
        throw err;
      }
      for (const name of names.sort()) {
        if (!HEX_RE[alg].test(name)) continue;
        const digest = `${alg}:${name}`;
        if (!isDigest(digest)) continue;
        try {
          const st = await stat(join(dir, name));
          yield { digest, size: st.size };
        } catch (err) {
          // Deleted between readdir and stat (e.g. by garbage collection): not part of the listing.
          if (!isErrno(err, "ENOENT")) throw err;
        }
      }
    }
  }

  /**
   * A write that found its blob already stored counts as new for garbage collection, which keeps
   * unreferenced blobs for a grace period after their last write.
   */
  private async markFresh(digest: Digest): Promise<void> {
    const now = new Date();
    await utimes(this.pathOf(digest), now, now).catch(() => {});
  }

  private async *verifiedChunks(digest: Digest): AsyncGenerator<Buffer> {
    const path = this.pathOf(digest);
    let fh: FileHandle;
    try {
      fh = await open(path, "r");
    } catch (err) {
      if (isErrno(err, "ENOENT")) throw new BlobNotFoundError(digest, this.root);
      throw err;
    }
    const alg = digestAlgorithm(digest);
    const hash = createHash(alg);
    for await (const chunk of fh.createReadStream({ highWaterMark: 1 << 20 })) {
      hash.update(chunk as Buffer);
      yield chunk as Buffer;
    }
    const actual = `${alg}:${hash.digest("hex")}` as Digest;
    if (actual !== digest) {
      throw new DigestMismatchError(
        digest,
        actual,
        `blob file ${path} is corrupt; delete it and pull or build again`,
      );
    }
  }
}

function toBuffer(chunk: Uint8Array | string): Buffer {
  if (typeof chunk === "string") return Buffer.from(chunk, "utf8");
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

async function* oneChunk(buf: Buffer): AsyncIterable<Buffer> {
  yield buf;
}

async function writeFully(fh: FileHandle, buf: Buffer): Promise<void> {
  let offset = 0;
  while (offset < buf.length) {
    const { bytesWritten } = await fh.write(buf, offset, buf.length - offset);
    offset += bytesWritten;
  }
}

async function drain(source: Readable | AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<void> {
  for await (const _ of source) signal?.throwIfAborted();
}

/** Makes a rename durable: the directory entry itself must reach the disk. */
async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, "EPERM");
  }
}

function explainWriteError(err: unknown, root: string): unknown {
  if (isErrno(err, "ENOSPC") || isErrno(err, "EDQUOT")) {
    const e = err as NodeJS.ErrnoException;
    const wrapped = new Error(
      `no space left to store a blob in ${root}: free disk space or remove build cache (kiln prune)`,
      { cause: err },
    ) as NodeJS.ErrnoException;
    wrapped.code = e.code;
    return wrapped;
  }
  return err;
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === "object" && err !== null && (err as NodeJS.ErrnoException).code === code;
}
