// Layer compression: gzip written with zlib — in parallel, chunk by chunk on libuv's thread pool,
// as one gzip member — and layers read as they come from registries (gzip or plain tar, told apart
// by magic bytes). zstd is recognised only to say clearly that Node 20's zlib cannot read it.
import { availableParallelism } from "node:os";
import { PassThrough, Readable, type Transform } from "node:stream";
import { promisify } from "node:util";
import zlib, { constants, createGunzip } from "node:zlib";

export type LayerCompression = "gzip" | "zstd" | "none";

export function detectLayerCompression(head: Uint8Array): LayerCompression {
  if (head.length >= 3 && head[0] === 0x1f && head[1] === 0x8b && head[2] === 0x08) return "gzip";
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
    return "zstd";
  }
  return "none";
}

export interface GzipOptions {
  /** zlib's level, 0 (stored) to 9; default 6. */
  readonly level?: number;
  /** Bytes of input per independently compressed piece. */
  readonly chunkSize?: number;
  /** Pieces compressed at once (on libuv's thread pool). */
  readonly concurrency?: number;
}

/** 1 MiB pieces: small enough to spread over the cores, large enough that the seams cost nothing. */
export const GZIP_CHUNK_SIZE = 1 << 20;
/** Deflate's window: each piece is primed with this much of the input before it, as pigz does. */
const WINDOW = 32 * 1024;
/** A piece whose sample shrinks by less than this fraction is stored rather than deflated. */
const INCOMPRESSIBLE_GAIN = 0.03;
const SAMPLE_COUNT = 4;
const SAMPLE_SIZE = 4096;

const deflateRaw = promisify(zlib.deflateRaw) as (buf: Buffer, opts: zlib.ZlibOptions) => Promise<Buffer>;

/**
 * How many pieces are in flight: one per core, but leaving libuv's pool a thread for the file
 * reads and writes the same pipeline waits on.
 */
function defaultConcurrency(): number {
  const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  return Math.max(1, Math.min(availableParallelism(), pool - 1));
}

/**
 * Whether a piece is not worth deflating: a few samples spread over it, compressed at level 1 as
 * one buffer, shrink by under 3%. Already-compressed files (archives, images, random bytes) are
 * then stored at memory speed instead of searched for matches at ~60 MB/s for no gain. The
 * decision depends on the bytes alone, so the output stays the same for the same input.
 */
async function incompressible(piece: Buffer): Promise<boolean> {
  if (piece.length < SAMPLE_COUNT * SAMPLE_SIZE * 2) return false;
  const step = Math.floor(piece.length / SAMPLE_COUNT);
  const sample = Buffer.concat(
    Array.from({ length: SAMPLE_COUNT }, (_, i) => piece.subarray(i * step, i * step + SAMPLE_SIZE)),
  );
  const packed = await deflateRaw(sample, { level: 1 });
  return packed.length >= sample.length * (1 - INCOMPRESSIBLE_GAIN);
}

/** Deflate's stored blocks hold at most this many bytes each. */
const MAX_STORED = 65535;

/**
 * A piece as deflate stored blocks, written here rather than by zlib: a piece always starts on a
 * byte boundary (the one before ended with a sync flush), where a stored block is its 5-byte
 * header (BFINAL=0, BTYPE=00, LEN, NLEN) and the bytes as they are.
 */
function storedBlocks(piece: Buffer): Buffer {
  const blocks = Math.max(1, Math.ceil(piece.length / MAX_STORED));
  const out = Buffer.allocUnsafe(piece.length + blocks * 5);
  let o = 0;
  for (let i = 0; i < blocks; i++) {
    const part = piece.subarray(i * MAX_STORED, (i + 1) * MAX_STORED);
    out[o] = 0;
    out.writeUInt16LE(part.length, o + 1);
    out.writeUInt16LE(~part.length & 0xffff, o + 3);
    part.copy(out, o + 5);
    o += 5 + part.length;
  }
  return out;
}

/**
 * One piece as raw deflate blocks ending on a byte boundary (a sync flush, never a final block), so
 * pieces concatenate into one valid deflate stream.
 */
async function deflatePiece(piece: Buffer, level: number, dictionary: Buffer | undefined): Promise<Buffer> {
  if (level === 0 || (await incompressible(piece))) return storedBlocks(piece);
  return deflateRaw(piece, {
    level,
    finishFlush: constants.Z_SYNC_FLUSH,
    // Room for the whole output at once (deflate's worst case is the input plus 5 bytes per 16
    // KiB): zlib's default 16 KiB would take one trip to the thread pool per 16 KiB.
    chunkSize: piece.length + (piece.length >> 10) + 1024,
    ...(dictionary ? { dictionary } : {}),
  });
}

/** Re-cuts a byte stream into pieces of exactly `size` bytes (the last may be shorter). */
async function* pieces(source: AsyncIterable<Buffer | Uint8Array>, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let have = 0;
  for await (const data of source) {
    let buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
    while (buf.length > 0) {
      if (have === 0 && buf.length >= size) {
        yield buf.subarray(0, size);
        buf = buf.subarray(size);
        continue;
      }
      const take = Math.min(size - have, buf.length);
      parts.push(buf.subarray(0, take));
      have += take;
      buf = buf.subarray(take);
      if (have === size) {
        yield Buffer.concat(parts, have);
        parts = [];
        have = 0;
      }
    }
  }
  if (have > 0) yield Buffer.concat(parts, have);
}

const crcTable = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** CRC-32 as gzip's trailer has it: zlib's own where this Node has it (20.15+), else a table. */
export function crc32(data: Uint8Array, previous = 0): number {
  const native = (zlib as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;
  if (native) return native(data, previous);
  let c = ~previous;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

function gzipHeader(level: number): Buffer {
  // No name, no time (so the same tar gives the same blob); XFL as zlib sets it; OS = Unix.
  const xfl = level === 9 ? 2 : level <= 1 ? 4 : 0;
  return Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, xfl, 0x03]);
}

/** A final, empty fixed-Huffman block: ends the deflate stream the pieces make. */
const FINAL_BLOCK = Buffer.from([0x03, 0x00]);

async function* gzipPieces(
  source: AsyncIterable<Buffer | Uint8Array>,
  level: number,
  chunkSize: number,
  concurrency: number,
): AsyncGenerator<Buffer> {
  yield gzipHeader(level);
  let crc = 0;
  let size = 0;
  let previous: Buffer | undefined;
  const inflight: Promise<Buffer>[] = [];
  try {
    for await (const piece of pieces(source, chunkSize)) {
      crc = crc32(piece, crc);
      size += piece.length;
      const dictionary = previous && level > 0 ? previous.subarray(-WINDOW) : undefined;
      const job = deflatePiece(piece, level, dictionary);
      // Awaited in order below; a failure meanwhile must not count as unhandled.
      job.catch(() => {});
      inflight.push(job);
      previous = piece;
      if (inflight.length >= concurrency) yield await inflight.shift()!;
    }
    while (inflight.length > 0) yield await inflight.shift()!;
  } finally {
    inflight.length = 0;
  }
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(size % 2 ** 32, 4);
  yield Buffer.concat([FINAL_BLOCK, trailer]);
}

/**
 * The gzip of `source`: one gzip member whose deflate stream is made of pieces compressed in
 * parallel (each primed with the 32 KiB before it), so it decompresses anywhere gzip does. The
 * same input gives the same bytes whatever the concurrency; no name or time in the header.
 */
export function gzipLayer(source: Readable, levelOrOpts: number | GzipOptions = {}): Readable {
  const opts = typeof levelOrOpts === "number" ? { level: levelOrOpts } : levelOrOpts;
  let level = opts.level ?? 6;
  if (level === constants.Z_DEFAULT_COMPRESSION) level = 6;
  if (!Number.isInteger(level) || level < 0 || level > 9)
    throw new Error(`gzip compression level ${level} is out of range: use 0 to 9`);
  const out = Readable.from(
    gzipPieces(source, level, opts.chunkSize ?? GZIP_CHUNK_SIZE, opts.concurrency ?? defaultConcurrency()),
    { objectMode: false },
  );
  source.once("error", (err) => out.destroy(err));
  return out;
}

/**
 * gunzip's output buffer: zlib's default of 16 KiB makes a 200 MB layer 12,800 chunks, each a trip
 * through every stream stage and file write after it; 1 MiB makes it 200.
 */
export const GUNZIP_CHUNK_SIZE = 1 << 20;

/** The uncompressed tar of a layer blob that is gzip or plain; zstd fails the stream with a reason. */
export function decompressLayer(source: Readable): Readable {
  const out = new PassThrough();
  const head: Buffer[] = [];
  let headLength = 0;
  let decided = false;
  const fail = (err: Error) => out.destroy(err);
  source.once("error", fail);
  const decide = () => {
    decided = true;
    source.off("data", onData);
    source.off("end", onEnd);
    const first = Buffer.concat(head);
    const kind = detectLayerCompression(first);
    if (kind === "zstd") {
      source.destroy();
      fail(
        new Error(
          "the layer is zstd-compressed, which this build of Kiln cannot decompress (Node 20 has no zstd)",
        ),
      );
      return;
    }
    const tail: Transform =
      kind === "gzip" ? createGunzip({ chunkSize: GUNZIP_CHUNK_SIZE }) : new PassThrough();
    tail.once("error", fail);
    tail.pipe(out);
    tail.write(first);
    source.pipe(tail);
  };
  const onData = (chunk: Buffer) => {
    head.push(chunk);
    headLength += chunk.length;
    if (headLength >= 4) decide();
  };
  const onEnd = () => {
    if (decided) return;
    decided = true;
    const first = Buffer.concat(head);
    if (detectLayerCompression(first) === "gzip") {
      const gunzip = createGunzip({ chunkSize: GUNZIP_CHUNK_SIZE });
      gunzip.once("error", fail);
      gunzip.pipe(out);
      gunzip.end(first);
    } else {
      out.end(first);
    }
  };
  source.on("data", onData);
  source.once("end", onEnd);
  return out;
}
