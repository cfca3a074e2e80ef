// The engine's store of HTTP source downloads: each body once, by content digest, and per URL the
// response validators (ETag, Last-Modified) and proposed file name that let a later build ask the
// server "changed?" instead of downloading again — the per-URL records BuildKit keeps for http sources.
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { writeFileAtomically } from "../fs/atomic-write.js";
import { type Digest, digestHex, sha256Digest } from "../oci/digest.js";

/** What a download was, as the server described it. */
export interface HttpDownloadRecord {
  /** sha256 of the body. */
  readonly digest: Digest;
  readonly size: number;
  /** The ETag, without a weak `W/` prefix (compared as BuildKit compares them). */
  readonly etag?: string;
  /** The Last-Modified header as sent. */
  readonly lastModified?: string;
  /** The file name from Content-Disposition, when the server proposed one. */
  readonly dispositionName?: string;
}

/** Per URL, the most recent downloads that carried a validator; older ones fall off. */
const RECORDS_PER_URL = 8;

export class HttpSourceCache {
  /** Records pinned by key resolution in this process, for the fetch that follows it. */
  private readonly resolved = new Map<string, HttpDownloadRecord>();

  constructor(readonly dir: string) {}

  blobPath(digest: Digest): string {
    return join(this.dir, "blobs", digestHex(digest));
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    try {
      return (await stat(this.blobPath(digest))).isFile();
    } catch {
      return false;
    }
  }

  /** The remembered downloads of a URL (newest first) whose bodies are still stored. */
  async records(urlKey: string): Promise<HttpDownloadRecord[]> {
    let raw: string;
    try {
      raw = await readFile(this.recordFile(urlKey), "utf8");
    } catch {
      return [];
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      return []; // a damaged record only costs a download
    }
    if (!Array.isArray(parsed)) return [];
    const out: HttpDownloadRecord[] = [];
    for (const r of parsed as HttpDownloadRecord[]) if (await this.hasBlob(r.digest)) out.push(r);
    return out;
  }

  /** Remembers a download carrying a validator, newest first. */
  async remember(urlKey: string, record: HttpDownloadRecord): Promise<void> {
    if (record.etag === undefined && record.lastModified === undefined) return;
    const same = (r: HttpDownloadRecord) =>
      r.digest === record.digest && r.etag === record.etag && r.lastModified === record.lastModified;
    const kept = (await this.records(urlKey)).filter((r) => !same(r));
    const next = [record, ...kept].slice(0, RECORDS_PER_URL);
    await mkdir(join(this.dir, "urls"), { recursive: true });
    await writeFileAtomically(this.recordFile(urlKey), JSON.stringify(next), { mode: 0o600 });
  }

  /** Streams a body into the store (temp file, then rename), returning its digest and size. */
  async storeBody(body: Readable): Promise<{ digest: Digest; size: number }> {
    const blobs = join(this.dir, "blobs");
    await mkdir(blobs, { recursive: true });
    const temp = join(blobs, `.tmp-${randomBytes(8).toString("hex")}`);
    const hash = createHash("sha256");
    let size = 0;
    body.on("data", (chunk: Buffer) => {
      hash.update(chunk);
      size += chunk.length;
    });
    try {
      await pipeline(body, createWriteStream(temp, { mode: 0o600 }));
      const digest = `sha256:${hash.digest("hex")}` as Digest;
      await rename(temp, this.blobPath(digest));
      return { digest, size };
    } catch (e) {
      await rm(temp, { force: true });
      throw e;
    }
  }

  /** Pins the record a cache key was computed from, so the fetch writes exactly that content. */
  pinResolved(urlKey: string, record: HttpDownloadRecord): void {
    this.resolved.set(urlKey, record);
  }

  pinnedRecord(urlKey: string): HttpDownloadRecord | undefined {
    return this.resolved.get(urlKey);
  }

  private recordFile(urlKey: string): string {
    return join(this.dir, "urls", `${digestHex(sha256Digest(urlKey))}.json`);
  }
}
