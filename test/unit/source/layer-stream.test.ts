import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { gzipSync } from "node:zlib";
import {
  decompressedLayer,
  OFF_THREAD_LAYER_SIZE,
  verifiedLayerTar,
} from "../../../src/source/layer-stream.js";

const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** `data` in 64 KiB pieces, as a download delivers it. */
function chunked(data: Buffer): Readable {
  const pieces: Buffer[] = [];
  for (let i = 0; i < data.length; i += 65536) pieces.push(data.subarray(i, i + 65536));
  return Readable.from(pieces);
}

describe("layer streams: decompressed with their diff ID", () => {
  // Half random (incompressible), half zeros (compressible), so that gzip has both kinds of block.
  const tar = Buffer.concat([randomBytes(OFF_THREAD_LAYER_SIZE / 2), Buffer.alloc(OFF_THREAD_LAYER_SIZE)]);
  const gz = gzipSync(tar, { level: 1 });

  for (const [where, size] of [
    ["on this thread", 0],
    ["in a worker", OFF_THREAD_LAYER_SIZE],
  ] as const) {
    it(`inflates a gzip layer ${where} into the same tar, with its digest`, async () => {
      const { stream, diffDigest } = decompressedLayer(chunked(gz), size);
      assert.ok((await buffer(stream)).equals(tar));
      assert.equal(await diffDigest, sha256(tar));
    });

    it(`passes a plain tar layer ${where} through unchanged, with its digest`, async () => {
      const { stream, diffDigest } = decompressedLayer(chunked(tar), size);
      assert.ok((await buffer(stream)).equals(tar));
      assert.equal(await diffDigest, sha256(tar));
    });

    it(`fails the stream and the digest of a corrupt gzip layer ${where}`, async () => {
      const corrupt = Buffer.from(gz);
      corrupt.fill(0xff, 1000, 5000);
      const { stream, diffDigest } = decompressedLayer(chunked(corrupt), size);
      await assert.rejects(buffer(stream));
      await assert.rejects(diffDigest);
    });
  }

  it("fails a verified layer tar at its end when the content is not the diff ID", async () => {
    const wrong = sha256(Buffer.from("another layer"));
    const stream = verifiedLayerTar(chunked(gz), wrong as never, "layer x", gz.length);
    await assert.rejects(buffer(stream), /layer x unpacks to sha256:[0-9a-f]{64}, but should be/);
  });
});
