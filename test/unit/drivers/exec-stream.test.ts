import assert from "node:assert/strict";
import { type StdStream, StdStreamDemuxer } from "../../../drivers/docker-api/exec-stream.js";
import { parseKilndVersion } from "../../../drivers/docker-container/driver.js";
import { missingCapabilities } from "../../../drivers/docker-container/host-config.js";

function frame(stream: 1 | 2, text: string): Buffer {
  const body = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

function demux(chunks: Buffer[]): Promise<[StdStream, string][]> {
  const frames: [StdStream, string][] = [];
  const d = new StdStreamDemuxer((s, b) => frames.push([s, b.toString()]));
  return new Promise((resolve, reject) => {
    d.on("finish", () => resolve(frames));
    d.on("error", reject);
    for (const c of chunks) d.write(c);
    d.end();
  });
}

describe("docker exec streams", () => {
  it("splits multiplexed stdout and stderr frames in order", async () => {
    assert.deepEqual(await demux([Buffer.concat([frame(1, "out"), frame(2, "err"), frame(1, "more")])]), [
      ["stdout", "out"],
      ["stderr", "err"],
      ["stdout", "more"],
    ]);
  });

  it("joins a frame split across chunks, even inside its header", async () => {
    const all = Buffer.concat([frame(1, "hello world"), frame(2, "x")]);
    assert.deepEqual(await demux([all.subarray(0, 3), all.subarray(3, 12), all.subarray(12)]), [
      ["stdout", "hello world"],
      ["stderr", "x"],
    ]);
  });

  it("fails on a frame of an unknown stream", async () => {
    const bad = frame(1, "x");
    bad[0] = 7;
    await assert.rejects(demux([bad]), /unknown stream 7/);
  });

  it("names the capabilities missing from a bounding set", () => {
    assert.deepEqual(missingCapabilities("000001fffeffffff"), ["SYS_RESOURCE"]);
    assert.deepEqual(missingCapabilities("000001ffffffffff"), []);
  });

  it("reads the version from kilnd version's output", () => {
    assert.equal(parseKilndVersion("kilnd github.com/kiln-build/kiln v0.1.0 abc123\n"), "v0.1.0");
  });
});
