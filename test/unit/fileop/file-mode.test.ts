import assert from "node:assert/strict";
import { InvalidModeError, parseMode } from "../../../src/worker/fileop/file-mode.js";

const FILE = 0o100000;
const DIR = 0o040000;
const apply = (spec: string, mode: number) => parseMode(spec)(mode);

describe("parseMode", () => {
  it("takes an octal mode as it is", () => {
    assert.equal(apply("755", FILE | 0o600), 0o755);
    assert.equal(apply("4755", FILE | 0o600), 0o4755);
  });

  it("adds and removes bits for the named classes", () => {
    assert.equal(apply("u+x,g-w", FILE | 0o664), 0o744);
    assert.equal(apply("go-rwx", FILE | 0o777), 0o700);
  });

  it("applies to all classes when none is named", () => {
    assert.equal(apply("+x", FILE | 0o644), 0o755);
    assert.equal(apply("-w", FILE | 0o666), 0o444);
  });

  it("sets exactly the given bits with =", () => {
    assert.equal(apply("a=r", FILE | 0o777), 0o444);
    assert.equal(apply("u=rw,go=", FILE | 0o777), 0o600);
  });

  it("gives X to directories and to files already executable by someone", () => {
    assert.equal(apply("a+X", DIR | 0o600), 0o711);
    assert.equal(apply("a+X", FILE | 0o600), 0o600);
    assert.equal(apply("a+X", FILE | 0o700), 0o711);
  });

  it("copies permissions from another class", () => {
    assert.equal(apply("go=u", FILE | 0o740), 0o777);
    assert.equal(apply("o+g", FILE | 0o750), 0o755);
  });

  it("sets set-id bits only for u and g, and sticky through o or all", () => {
    assert.equal(apply("u+s", FILE | 0o755), 0o4755);
    assert.equal(apply("g+s", FILE | 0o755), 0o2755);
    assert.equal(apply("+t", DIR | 0o777), 0o1777);
    assert.equal(apply("u+t", DIR | 0o777), 0o777);
  });

  it("rejects what chmod would not accept", () => {
    assert.throws(() => parseMode("u+q"), InvalidModeError);
    assert.throws(() => parseMode("x+u"), InvalidModeError);
    assert.throws(() => parseMode(""), InvalidModeError);
    assert.throws(() => parseMode("999"), InvalidModeError);
  });
});
