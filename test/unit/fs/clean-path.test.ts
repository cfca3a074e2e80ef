import assert from "node:assert/strict";
import { cleanPath, rootedComponents, splitDirBase } from "../../../src/fs/clean-path.js";

describe("cleanPath", () => {
  it("collapses slashes, dots and parent references like Go's filepath.Clean", () => {
    assert.equal(cleanPath("a//b/./c/.."), "a/b");
    assert.equal(cleanPath("./a/"), "a");
    assert.equal(cleanPath(""), ".");
    assert.equal(cleanPath("/.."), "/");
    assert.equal(cleanPath("../a/../.."), "../..");
  });

  it("keeps the root of an absolute path", () => {
    assert.equal(cleanPath("/"), "/");
    assert.equal(cleanPath("//a/"), "/a");
  });
});

describe("rootedComponents", () => {
  it("clamps parent references at the root", () => {
    assert.deepEqual(rootedComponents("../../a/./b/"), ["a", "b"]);
    assert.deepEqual(rootedComponents("/"), []);
  });
});

describe("splitDirBase", () => {
  it("splits after the last slash as Go's filepath.Split does", () => {
    assert.deepEqual(splitDirBase("a/b/c"), ["a/b/", "c"]);
    assert.deepEqual(splitDirBase("a/b/"), ["a/b/", ""]);
    assert.deepEqual(splitDirBase("c"), ["", "c"]);
  });
});
