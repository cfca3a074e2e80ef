// Layer blobs as they arrive (gzip or plain tar, told apart by magic bytes), decompressed, with the
// digest of the uncompressed bytes (the diff_id) computed on the way through — for a large layer in
// a worker thread, so that the event loop, which also receives, verifies and stores the download
// and extracts the tar, does not hash and move every uncompressed byte as well.
import { createHash } from "node:crypto";
import { PassThrough, pipeline, Readable, Transform } from "node:stream";
import { Worker } from "node:worker_threads";
import { createGunzip } from "node:zlib";
import { GUNZIP_CHUNK_SIZE } from "../archive/compression.js";
import type { Digest } from "../oci/digest.js";

export interface DecompressedLayer {
  readonly stream: Readable;
  readonly diffDigest: Promise<Digest>;
}

/** Blobs from this size on are inflated and hashed off the event loop (a worker costs ~30 ms to start). */
export const OFF_THREAD_LAYER_SIZE = 16 << 20;

/**
 * The blob's tar and its digest. `size` (the blob's, when known) picks where the work runs: on this
 * thread for small layers, in a worker for large ones.
 */
export function decompressedLayer(blob: Readable, size = 0): DecompressedLayer {
  return size >= OFF_THREAD_LAYER_SIZE ? inflateInWorker(blob) : inflateHere(blob);
}

function inflateHere(blob: Readable): DecompressedLayer {
  const out = new PassThrough();
  // A failure after the reader is done (a blob found wrong at its very end, while unpacked as it
  // downloads) reaches the caller through diffDigest; it must not also be an unheard 'error'.
  out.on("error", () => {});
  const hash = createHash("sha256");
  let resolveDigest!: (d: Digest) => void;
  let rejectDigest!: (e: Error) => void;
  const diffDigest = new Promise<Digest>((res, rej) => {
    resolveDigest = res;
    rejectDigest = rej;
  });
  diffDigest.catch(() => {});
  let started = false;
  const fail = (err: Error) => {
    rejectDigest(err);
    out.destroy(err);
  };
  blob.once("error", fail);
  blob.once("readable", () => {
    if (started) return;
    started = true;
    const head: Buffer | null = blob.read(2) ?? blob.read();
    if (head) blob.unshift(head);
    const gz = head !== null && head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
    const plain: Readable = gz ? blob.pipe(createGunzip({ chunkSize: GUNZIP_CHUNK_SIZE })) : blob;
    if (gz) plain.once("error", fail);
    plain.on("data", (chunk: Buffer) => {
      hash.update(chunk);
      if (!out.write(chunk)) {
        plain.pause();
        out.once("drain", () => plain.resume());
      }
    });
    plain.once("end", () => {
      resolveDigest(`sha256:${hash.digest("hex")}` as Digest);
      out.end();
    });
  });
  blob.once("end", () => {
    if (!started) {
      started = true;
      resolveDigest(`sha256:${hash.digest("hex")}` as Digest);
      out.end();
    }
  });
  return { stream: out, diffDigest };
}

/** The layer's tar from `blob`, as a stream that errors at its end unless its digest is `diffId`. */
export function verifiedLayerTar(blob: Readable, diffId: Digest, what: string, size = 0): Readable {
  const { stream, diffDigest } = decompressedLayer(blob, size);
  const checked = new Transform({
    transform(chunk, _enc, done) {
      done(null, chunk);
    },
    flush(done) {
      diffDigest.then(
        (actual) =>
          done(actual === diffId ? null : new Error(`${what} unpacks to ${actual}, but should be ${diffId}`)),
        done,
      );
    },
  });
  pipeline(stream, checked, () => {
    // A failure reaches the reader through `checked`, which pipeline destroys with it.
  });
  return checked;
}

// The worker: compressed bytes in, the tar out in copies it hands over (zlib keeps writing into the
// buffers its chunks are cut from), then the digest. Plain source text, so that it runs the same
// from the sources and from the bundle.
const INFLATE_WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const { createGunzip } = require("node:zlib");
const hash = createHash("sha256");
let gunzip;
const emit = (chunk) => {
  hash.update(chunk);
  const copy = new Uint8Array(chunk.length);
  copy.set(chunk);
  parentPort.postMessage({ chunk: copy }, [copy.buffer]);
};
const finish = () => parentPort.postMessage({ digest: "sha256:" + hash.digest("hex") });
parentPort.on("message", (m) => {
  if (m.chunk) {
    const buf = Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.byteLength);
    if (gunzip === undefined) {
      gunzip = buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b ? createGunzip({ chunkSize: workerData.chunkSize }) : null;
      if (gunzip) {
        gunzip.on("data", emit);
        gunzip.on("end", finish);
        gunzip.on("error", (e) => parentPort.postMessage({ error: e.message, code: e.code }));
      }
    }
    if (gunzip) gunzip.write(buf);
    else emit(buf);
  } else if (m.end) {
    if (gunzip) gunzip.end();
    else finish();
  }
});
`;

/** Compressed bytes per message to the worker. */
const TO_WORKER_BATCH = 1 << 20;

function inflateInWorker(blob: Readable): DecompressedLayer {
  const worker = new Worker(INFLATE_WORKER, { eval: true, workerData: { chunkSize: GUNZIP_CHUNK_SIZE } });
  let resolveDigest!: (d: Digest) => void;
  let rejectDigest!: (e: Error) => void;
  const diffDigest = new Promise<Digest>((res, rej) => {
    resolveDigest = res;
    rejectDigest = rej;
  });
  diffDigest.catch(() => {});
  let settled = false;
  const out = new Readable({
    highWaterMark: 4 << 20,
    read() {
      blob.resume();
    },
    destroy(err, done) {
      stop();
      if (!settled) fail(err ?? new Error("the layer's reader stopped before its end"));
      done(err);
    },
  });
  // A failure after the reader is done reaches the caller through diffDigest (see inflateHere).
  out.on("error", () => {});
  const stop = () => {
    blob.off("data", onData);
    blob.destroy();
    void worker.terminate();
  };
  const fail = (err: Error) => {
    if (settled) return;
    settled = true;
    stop();
    rejectDigest(err);
    out.destroy(err);
  };
  // Bytes go over in copies of their own, gathered to a megabyte: a posted view would take its
  // whole underlying buffer along, and the download's buffers are also the content store's.
  let batch = new Uint8Array(TO_WORKER_BATCH);
  let batched = 0;
  const send = () => {
    if (batched === 0) return;
    const full = batch.subarray(0, batched);
    worker.postMessage({ chunk: full }, [batch.buffer]);
    batch = new Uint8Array(TO_WORKER_BATCH);
    batched = 0;
  };
  const onData = (chunk: Buffer) => {
    for (let at = 0; at < chunk.length; ) {
      const n = Math.min(chunk.length - at, TO_WORKER_BATCH - batched);
      batch.set(chunk.subarray(at, at + n), batched);
      batched += n;
      at += n;
      if (batched === TO_WORKER_BATCH) send();
    }
    // The tar's reader is behind: stop sending until it asks for more.
    if (out.readableLength >= out.readableHighWaterMark) blob.pause();
  };
  worker.on("message", (m: { chunk?: Uint8Array; digest?: Digest; error?: string; code?: string }) => {
    if (m.chunk) {
      out.push(Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.byteLength));
    } else if (m.digest) {
      settled = true;
      resolveDigest(m.digest);
      out.push(null);
      void worker.terminate();
    } else if (m.error !== undefined) {
      fail(Object.assign(new Error(m.error), { code: m.code }));
    }
  });
  worker.on("error", fail);
  blob.on("data", onData);
  blob.once("end", () => {
    send();
    worker.postMessage({ end: true });
  });
  blob.once("error", fail);
  return { stream: out, diffDigest };
}
