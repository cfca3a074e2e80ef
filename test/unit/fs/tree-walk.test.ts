import assert from "node:assert/strict";
import { join } from "node:path";
import { PatternMatcher } from "../../../src/fs/patterns.js";
import { compareNames, walkTree } from "../../../src/fs/tree-walk.js";
import { TempDirs, writeTree } from "../fileop/tree-fixtures.js";

describe("walkTree", () => {
  const temp = new TempDirs();
  let root: string;
  beforeEach(async () => {
    root = await temp.make();
    await writeTree(root, {
      "b/2.txt": "2",
      "a/1.txt": "1",
      "a/sub/3.log": "3",
      "c/keep.md": "k",
      "c/drop.md": "d",
      ln: { symlink: "a" },
    });
  });
  afterEach(() => temp.cleanup());

  it("lists the start and everything below in pre-order, names sorted", async () => {
    const rels = (await walkTree(root)).map((e) => e.rel);
    assert.deepEqual(rels, [
      "",
      "a",
      "a/1.txt",
      "a/sub",
      "a/sub/3.log",
      "b",
      "b/2.txt",
      "c",
      "c/drop.md",
      "c/keep.md",
      "ln",
    ]);
  });

  it("lists symlinks as entries without following them", async () => {
    const ln = (await walkTree(root)).find((e) => e.rel === "ln")!;
    assert.ok(ln.stat.isSymbolicLink());
  });

  it("takes only included paths, with their directories as unselected parents", async () => {
    const entries = await walkTree(root, { include: new PatternMatcher(["*/sub/*.log"]) });
    assert.deepEqual(
      entries.map((e) => [e.rel, e.selected]),
      [
        ["", true],
        ["a", false],
        ["a/sub", false],
        ["a/sub/3.log", true],
      ],
    );
  });

  it("leaves out excluded paths but keeps exceptions inside excluded directories", async () => {
    const entries = await walkTree(root, { exclude: new PatternMatcher(["c", "!c/keep.md", "a"]) });
    assert.deepEqual(
      entries.map((e) => [e.rel, e.selected]),
      [
        ["", true],
        ["b", true],
        ["b/2.txt", true],
        ["c", false],
        ["c/keep.md", true],
        ["ln", true],
      ],
    );
  });

  it("walks a single file as one entry", async () => {
    const entries = await walkTree(join(root, "a/1.txt"));
    assert.deepEqual(
      entries.map((e) => e.rel),
      [""],
    );
  });
});

describe("compareNames", () => {
  it("orders by UTF-8 bytes, putting astral characters after U+FFFD", () => {
    const names = ["\u{1F600}", "\uFFFD", "a", "B"];
    assert.deepEqual([...names].sort(compareNames), ["B", "a", "\uFFFD", "\u{1F600}"]);
  });
});
