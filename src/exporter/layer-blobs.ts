// Turns a snapshot chain into image layers: each snapshot's diff over its parent becomes one
// compressed blob in the content store, remembered per snapshot so it is made only once.
import { createHash } from "node:crypto";
import { PassThrough, type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import type { ContentStore } from "../content/types.js";
import type { Digest } from "../oci/digest.js";
import { type Descriptor, MediaType } from "../oci/spec.js";
import type { SnapshotId, Snapshotter } from "../snapshot/types.js";

export interface LayerRecord {
  /** sha256 of the uncompressed tar (the image config's diff_id). */
  readonly diffId: Digest;
  /** The compressed blob as a manifest lists it. */
  readonly blob: Descriptor;
  /** Whether the diff had no entries at all (such layers are left out of images). */
  readonly empty: boolean;
}

/** Where layer records are kept (the engine's metadata database). */
export interface LayerRecordStore {
  get(snapshot: SnapshotId): Promise<LayerRecord | undefined>;
  put(snapshot: SnapshotId, record: LayerRecord): Promise<void>;
}

export type Compression = "gzip" | "uncompressed";

/** The snapshots from the bottom of the chain to `top`. */
export async function snapshotChain(snapshotter: Snapshotter, top: SnapshotId): Promise<SnapshotId[]> {
  const chain: SnapshotId[] = [];
  let cur: SnapshotId | undefined = top;
  while (cur) {
    const info = await snapshotter.stat(cur);
    if (!info) throw new Error(`snapshot ${cur} is missing from the store`);
    chain.push(cur);
    cur = info.parent;
  }
  return chain.reverse();
}

/** Counts tar entries and hashes the bytes that pass through. */
class TarDigester extends Transform {
  private readonly hash = createHash("sha256");
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.push(chunk);
    cb();
  }
  digest(): Digest {
    return `sha256:${this.hash.digest("hex")}` as Digest;
  }
}

/** An empty tar is two 512-byte zero blocks (or more zero padding); anything else has entries. */
function isEmptyTarSize(bytes: number, firstBlockZero: boolean): boolean {
  return firstBlockZero && bytes <= 10240;
}

export async function layerForSnapshot(
  snapshotter: Snapshotter,
  store: ContentStore,
  records: LayerRecordStore,
  id: SnapshotId,
  compression: Compression,
): Promise<LayerRecord> {
  const known = await records.get(id);
  if (known && (await store.has(known.blob.digest))) return known;
  const diff: Readable = snapshotter.diff(id);
  const digester = new TarDigester();
  let firstBlockZero: boolean | undefined;
  const sniff = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (firstBlockZero === undefined) firstBlockZero = chunk.subarray(0, 512).every((b) => b === 0);
      cb(null, chunk);
    },
  });
  const out = new PassThrough();
  const stages: (NodeJS.ReadableStream | NodeJS.WritableStream)[] = [diff, sniff, digester];
  if (compression === "gzip") stages.push(createGzip({ level: 6 }));
  stages.push(out);
  const [info] = await Promise.all([
    store.write(out),
    pipeline(stages as [Readable, ...NodeJS.WritableStream[]]),
  ]);
  const record: LayerRecord = {
    diffId: digester.digest(),
    blob: {
      mediaType: compression === "gzip" ? MediaType.OciLayerGzip : MediaType.OciLayer,
      digest: info.digest,
      size: info.size,
    },
    empty: isEmptyTarSize(digester.bytes, firstBlockZero ?? true),
  };
  await records.put(id, record);
  return record;
}

/** Layers of every snapshot in the chain, bottom first. */
export async function layersForChain(
  snapshotter: Snapshotter,
  store: ContentStore,
  records: LayerRecordStore,
  top: SnapshotId | undefined,
  compression: Compression,
): Promise<LayerRecord[]> {
  if (!top) return [];
  const chain = await snapshotChain(snapshotter, top);
  return Promise.all(chain.map((id) => layerForSnapshot(snapshotter, store, records, id, compression)));
}
