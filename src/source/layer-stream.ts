// Layer blobs as they arrive (gzip or plain tar, told apart by magic bytes), decompressed, with the
// digest of the uncompressed bytes (the diff_id) computed on the way through.
import { createHash } from "node:crypto";
import { PassThrough, type Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { GUNZIP_CHUNK_SIZE } from "../archive/compression.js";
import type { Digest } from "../oci/digest.js";

export function decompressedLayer(blob: Readable): { stream: Readable; diffDigest: Promise<Digest> } {
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
