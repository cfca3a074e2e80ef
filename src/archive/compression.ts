// Layer compression: gzip written with zlib, and layers read as they come from registries (gzip or
// plain tar, told apart by magic bytes). zstd is recognised only to say clearly that Node 20's zlib
// cannot read it.
import { PassThrough, type Readable, type Transform } from "node:stream";
import { constants, createGunzip, createGzip } from "node:zlib";

export type LayerCompression = "gzip" | "zstd" | "none";

export function detectLayerCompression(head: Uint8Array): LayerCompression {
  if (head.length >= 3 && head[0] === 0x1f && head[1] === 0x8b && head[2] === 0x08) return "gzip";
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
    return "zstd";
  }
  return "none";
}

/** The gzip of `source` (no file name or time in the header, so the same tar gives the same blob). */
export function gzipLayer(source: Readable, level: number = constants.Z_DEFAULT_COMPRESSION): Readable {
  const gzip = createGzip({ level });
  source.once("error", (err) => gzip.destroy(err));
  return source.pipe(gzip);
}

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
    const tail: Transform = kind === "gzip" ? createGunzip() : new PassThrough();
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
      const gunzip = createGunzip();
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
