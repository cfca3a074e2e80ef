import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { PlainProgress } from "../../../cli-plugin/progress/plain.js";
import type { Digest } from "../../../src/oci/digest.js";

const A = `sha256:${"a".repeat(64)}` as Digest;
const B = `sha256:${"b".repeat(64)}` as Digest;

function render(fn: (p: PlainProgress) => void): string {
  const out = new PassThrough();
  let text = "";
  out.on("data", (c: Buffer) => {
    text += c.toString();
  });
  fn(new PlainProgress(out));
  return text;
}

describe("plain progress", () => {
  it("prints BuildKit's numbered blocks: name, timed log lines, DONE with seconds", () => {
    const text = render((p) => {
      p.handle({ type: "vertex", vertex: A, name: "[1/2] RUN echo hi", inputs: [], started: 1000 });
      p.handle({ type: "log", vertex: A, stream: 1, data: Buffer.from("hi\n"), timestamp: 1215 });
      p.handle({
        type: "vertex",
        vertex: A,
        name: "[1/2] RUN echo hi",
        inputs: [],
        started: 1000,
        completed: 1300,
      });
    });
    assert.equal(text, "#1 [1/2] RUN echo hi\n#1 0.215 hi\n#1 DONE 0.3s\n");
  });

  it("marks cached steps CACHED and separates blocks by a blank line", () => {
    const text = render((p) => {
      p.handle({
        type: "vertex",
        vertex: A,
        name: "first",
        inputs: [],
        started: 1,
        completed: 1,
        cached: true,
      });
      p.handle({ type: "vertex", vertex: B, name: "second", inputs: [], started: 2 });
      p.handle({
        type: "vertex",
        vertex: B,
        name: "second",
        inputs: [],
        started: 2,
        completed: 2,
        error: "exit code: 1",
      });
    });
    assert.equal(text, "#1 first\n#1 CACHED\n\n#2 second\n#2 ERROR: exit code: 1\n");
  });

  it("joins a log line split across chunks", () => {
    const text = render((p) => {
      p.handle({ type: "vertex", vertex: A, name: "s", inputs: [], started: 0 });
      p.handle({ type: "log", vertex: A, stream: 1, data: Buffer.from("hel"), timestamp: 0 });
      p.handle({ type: "log", vertex: A, stream: 1, data: Buffer.from("lo\n"), timestamp: 0 });
    });
    assert.equal(text, "#1 s\n#1 0.000 hello\n");
  });
});
