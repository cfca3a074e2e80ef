import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { decompressLayer, detectLayerCompression, gzipLayer } from "../../../src/archive/compression.js";
import { streamBytes } from "./fixtures.js";

/** A stream delivering `data` in small pieces, as a network read would. */
function chunked(data: Buffer, size = 3): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
  return Readable.from(parts, { objectMode: false });
}

describe("layer compression", () => {
  const tar = Buffer.concat([Buffer.from("file.txt"), randomBytes(5000)]);

  it("tells gzip, zstd and plain tar apart by their magic bytes", () => {
    assert.equal(detectLayerCompression(gzipSync(tar)), "gzip");
    assert.equal(detectLayerCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0])), "zstd");
    assert.equal(detectLayerCompression(tar), "none");
  });

  it("decompresses a gzip layer arriving in small chunks", async () => {
    assert.ok((await streamBytes(decompressLayer(chunked(gzipSync(tar))))).equals(tar));
  });

  it("passes a plain layer through unchanged", async () => {
    assert.ok((await streamBytes(decompressLayer(chunked(tar)))).equals(tar));
  });

  it("passes through a layer shorter than any magic number", async () => {
    assert.deepEqual(
      await streamBytes(decompressLayer(Readable.from([Buffer.from("ab")]))),
      Buffer.from("ab"),
    );
  });

  it("fails a zstd layer with a reason", async () => {
    const zstd = Readable.from([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3])]);
    await assert.rejects(streamBytes(decompressLayer(zstd)), /zstd/);
  });

  it("gzips to the same bytes every time, and back", async () => {
    const a = await streamBytes(gzipLayer(Readable.from([tar])));
    const b = await streamBytes(gzipLayer(Readable.from([tar])));
    assert.ok(a.equals(b));
    assert.ok((await streamBytes(decompressLayer(Readable.from([a])))).equals(tar));
  });
});
