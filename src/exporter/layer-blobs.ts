// Turns a snapshot chain into image layers: each snapshot's diff over its parent becomes one
// compressed blob in the content store, remembered per snapshot so it is made only once (and, when
// the image is pushed, streamed to the registry while it is made). Layers are re-encoded on demand
// for force-compression and rewrite-timestamp.
import { createHash } from "node:crypto";
import { PassThrough, type Readable, Transform, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { decompressLayer, gzipLayer } from "../archive/compression.js";
import type { ContentStore } from "../content/types.js";
import type { Digest } from "../oci/digest.js";
import { type Descriptor, MediaType } from "../oci/spec.js";
import type { SnapshotId, Snapshotter } from "../snapshot/types.js";
import { TarTimestampClamp } from "./rewrite-timestamp.js";

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

/** The compression a layer media type says its blob has ("other": zstd, foreign, unknown). */
export function compressionOfMediaType(mediaType: string): Compression | "other" {
  if (mediaType === MediaType.OciLayerGzip || mediaType === MediaType.DockerLayerGzip) return "gzip";
  if (mediaType === MediaType.OciLayer || mediaType === MediaType.DockerLayer) return "uncompressed";
  return "other";
}

/** A layer's media type in OCI's or Docker's spelling; unknown kinds are kept as they are. */
export function layerMediaType(mediaType: string, oci: boolean): string {
  switch (compressionOfMediaType(mediaType)) {
    case "gzip":
      return oci ? MediaType.OciLayerGzip : MediaType.DockerLayerGzip;
    case "uncompressed":
      return oci ? MediaType.OciLayer : MediaType.DockerLayer;
    default:
      return mediaType;
  }
}

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

/**
 * An upload of a layer blob to a registry, started before the blob's digest is known: the bytes go
 * up as they are compressed instead of after, so a push costs about the time of the slower of the
 * two rather than their sum.
 */
export interface LayerUpload {
  readonly stream: Writable;
  /** Completes the upload under the blob's descriptor, once `stream` has ended. */
  commit(desc: Descriptor): Promise<void>;
  abort(reason?: Error): void;
}

/** Opens the uploads a new layer blob streams to (one per repository the image is pushed to). */
export type LayerUploads = () => Promise<LayerUpload[]>;

/** Blobs smaller than this go up with the push as usual: not worth an upload of their own. */
const STREAMED_UPLOAD_MIN_BYTES = 4 << 20;

/**
 * Hands a blob's bytes to the content store and, once it has proved large enough, to uploads as
 * well. An upload that fails is dropped quietly: the push that follows uploads whatever the
 * registry does not have.
 */
class UploadTee {
  private uploads: LayerUpload[] = [];
  private readonly failed = new Set<LayerUpload>();
  private complete = false;

  constructor(private readonly open: LayerUploads) {}

  async *through(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    let held: Buffer[] | undefined = [];
    let heldBytes = 0;
    try {
      for await (const chunk of source) {
        yield chunk;
        if (!held) {
          await this.send(chunk);
          continue;
        }
        held.push(chunk);
        heldBytes += chunk.length;
        if (heldBytes < STREAMED_UPLOAD_MIN_BYTES) continue;
        const first = held;
        held = undefined;
        this.uploads = await this.open().catch(() => []);
        for (const u of this.uploads) u.stream.on("error", () => this.failed.add(u));
        for (const c of first) await this.send(c);
      }
      for (const u of this.live()) u.stream.end();
      this.complete = true;
    } finally {
      if (!this.complete) this.abort();
    }
  }

  /** Uploads that have not failed (an ended stream is destroyed once drained: that is no failure). */
  private live(): LayerUpload[] {
    return this.uploads.filter((u) => !this.failed.has(u));
  }

  private async send(chunk: Buffer): Promise<void> {
    await Promise.all(
      this.live().map(async (u) => {
        if (u.stream.destroyed) {
          this.failed.add(u);
          return;
        }
        if (u.stream.write(chunk)) return;
        await new Promise<void>((resolve) => {
          const done = () => {
            u.stream.off("drain", done);
            u.stream.off("close", done);
            resolve();
          };
          u.stream.on("drain", done);
          u.stream.on("close", done);
        });
      }),
    );
  }

  /** Completes every upload that got all the bytes; one that fails is left to the push. */
  async commit(desc: Descriptor): Promise<void> {
    if (!this.complete) return;
    await Promise.all(this.live().map((u) => u.commit(desc).catch(() => {})));
  }

  abort(): void {
    for (const u of this.uploads) u.abort();
  }
}

/** Compresses a layer tar into the content store (streaming it to `uploads` on the way). */
async function storeLayerBlob(
  store: ContentStore,
  tar: Readable,
  compression: Compression,
  level: number | undefined,
  uploads: LayerUploads | undefined,
): Promise<Descriptor> {
  const blob = compression === "gzip" ? gzipLayer(tar, { level }) : tar;
  const tee = uploads ? new UploadTee(uploads) : undefined;
  const info = await store.write(tee ? tee.through(blob) : blob);
  const desc: Descriptor = {
    mediaType: compression === "gzip" ? MediaType.OciLayerGzip : MediaType.OciLayer,
    digest: info.digest,
    size: info.size,
  };
  await tee?.commit(desc);
  return desc;
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
  level?: number,
  uploads?: LayerUploads,
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
  stages.push(out);
  const [blob] = await Promise.all([
    storeLayerBlob(store, out, compression, level, uploads),
    pipeline(stages as [Readable, ...NodeJS.WritableStream[]]),
  ]);
  const record: LayerRecord = {
    diffId: digester.digest(),
    blob,
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
  level?: number,
  uploads?: LayerUploads,
): Promise<LayerRecord[]> {
  if (!top) return [];
  const chain = await snapshotChain(snapshotter, top);
  return Promise.all(
    chain.map((id) => layerForSnapshot(snapshotter, store, records, id, compression, level, uploads)),
  );
}

export interface LayerConversion {
  readonly compression: Compression;
  readonly level?: number;
  /** Clamp every time in the tar to this many seconds since the epoch (rewrite-timestamp). */
  readonly epoch?: number;
}

/**
 * Conversions already made, by source blob and target: remembered for the engine's lifetime (the
 * blobs themselves are checked for, as garbage collection may have taken them since).
 */
const conversions = new Map<string, LayerRecord>();
const MAX_REMEMBERED_CONVERSIONS = 4096;

/**
 * The layer re-encoded: decompressed, its times clamped when asked, compressed as asked. The diff
 * ID is computed anew (clamping changes the tar). Used for force-compression and rewrite-timestamp.
 */
export async function convertLayer(
  store: ContentStore,
  layer: LayerRecord,
  to: LayerConversion,
  uploads?: LayerUploads,
): Promise<LayerRecord> {
  const from = compressionOfMediaType(layer.blob.mediaType);
  if (from === "other") {
    throw new Error(
      `layer ${layer.blob.digest} has media type ${layer.blob.mediaType}, which cannot be re-encoded`,
    );
  }
  const key = `${layer.blob.digest}|${to.compression}|${to.level ?? ""}|${to.epoch ?? ""}`;
  const known = conversions.get(key);
  if (known && (await store.has(known.blob.digest))) return known;
  const digester = new TarDigester();
  const stages: (NodeJS.ReadableStream | NodeJS.WritableStream)[] = [
    decompressLayer(store.read(layer.blob.digest)),
  ];
  if (to.epoch !== undefined) stages.push(new TarTimestampClamp(to.epoch));
  stages.push(digester);
  const out = new PassThrough();
  stages.push(out);
  const [blob] = await Promise.all([
    storeLayerBlob(store, out, to.compression, to.level, uploads),
    pipeline(stages as [Readable, ...NodeJS.WritableStream[]]),
  ]);
  const record: LayerRecord = { diffId: digester.digest(), blob, empty: layer.empty };
  // A daemon lives long: forget the oldest conversions rather than grow without end.
  if (conversions.size >= MAX_REMEMBERED_CONVERSIONS) conversions.delete(conversions.keys().next().value!);
  conversions.set(key, record);
  return record;
}
