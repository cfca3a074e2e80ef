import assert from "node:assert/strict";
import { newBuildRequest } from "../../../src/client/build-request.js";
import type { Digest } from "../../../src/oci/digest.js";
import { parsePlatform } from "../../../src/oci/platform.js";
import { BuildLog } from "../../../src/server/build-log.js";

const vertex = (c: string) => `sha256:${c.repeat(64)}` as Digest;

describe("the daemon's build log", () => {
  it("logs each finished, cached or failed step once, with the build's platforms", () => {
    const lines: string[] = [];
    const req = newBuildRequest("/ctx", {
      platforms: [parsePlatform("linux/amd64"), parsePlatform("linux/arm64")],
    });
    const log = new BuildLog((l) => lines.push(l), req);
    log.progress({
      type: "vertex",
      vertex: vertex("a"),
      name: "[1/2] FROM busybox",
      inputs: [],
      cached: true,
    });
    log.progress({ type: "vertex", vertex: vertex("b"), name: "[2/2] RUN make", inputs: [], started: 1000 });
    log.progress({
      type: "vertex",
      vertex: vertex("b"),
      name: "[2/2] RUN make",
      inputs: [],
      started: 1000,
      completed: 2500,
    });
    log.progress({
      type: "vertex",
      vertex: vertex("b"),
      name: "[2/2] RUN make",
      inputs: [],
      started: 1000,
      completed: 2500,
    });
    log.progress({
      type: "vertex",
      vertex: vertex("c"),
      name: "[2/2] RUN test",
      inputs: [],
      error: "exit code: 1\nmore",
    });
    log.end("finished");
    const id = /^info: build ([0-9a-f]{8}) /.exec(lines[0]!)?.[1];
    assert.ok(id, lines[0]);
    const label = `info: build ${id} (linux/amd64,linux/arm64)`;
    assert.deepEqual(lines, [
      `${label}: started`,
      `${label}: [1/2] FROM busybox: cached`,
      `${label}: [2/2] RUN make: done in 1.50s`,
      `${label}: [2/2] RUN test: failed: exit code: 1`,
      `${label}: finished`,
    ]);
  });

  it("names the default platform for a request that asks for none, and the last line of a failure", () => {
    const lines: string[] = [];
    const log = new BuildLog((l) => lines.push(l), newBuildRequest("/ctx", {}));
    log.end({ failed: new Error("Dockerfile:3\nfailed to solve: exit code: 2") });
    assert.match(lines[0]!, /^info: build [0-9a-f]{8} \(default platform\): started$/);
    assert.match(
      lines[1]!,
      /^info: build [0-9a-f]{8} \(default platform\): failed: failed to solve: exit code: 2$/,
    );
  });
});
