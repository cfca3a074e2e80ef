import assert from "node:assert/strict";
import { join } from "node:path";
import { resolveWildcards, splitAtFirstWildcard } from "../../../src/fs/wildcards.js";
import { TempDirs, writeTree } from "../fileop/tree-fixtures.js";

describe("splitAtFirstWildcard", () => {
  it("splits at the first component with a wildcard", () => {
    assert.deepEqual(splitAtFirstWildcard("/a/b*/c"), ["/a", "b*/c"]);
    assert.deepEqual(splitAtFirstWildcard("a/b"), ["/a/b", ""]);
  });
});

describe("resolveWildcards", () => {
  const temp = new TempDirs();
  let root: string;
  beforeEach(async () => {
    root = await temp.make();
    await writeTree(root, {
      "src/b.txt": "b",
      "src/a.txt": "a",
      "src/c.md": "c",
      "src/x/a.txt": "xa",
      "src/y/a.txt": "ya",
      "src/y/z/a.txt": "deep",
      link: { symlink: "src" },
    });
  });
  afterEach(() => temp.cleanup());

  it("returns matches of one component in name order", async () => {
    assert.deepEqual(await resolveWildcards(root, "/src/*.txt", true), ["/src/a.txt", "/src/b.txt"]);
  });

  it("matches across several components without crossing more directories than written", async () => {
    assert.deepEqual(await resolveWildcards(root, "src/*/a.txt", true), ["/src/x/a.txt", "/src/y/a.txt"]);
  });

  it("resolves the fixed part through symlinks and reports real paths", async () => {
    assert.deepEqual(await resolveWildcards(root, "/link/*.md", true), ["/src/c.md"]);
  });

  it("returns nothing when nothing matches or the base is missing", async () => {
    assert.deepEqual(await resolveWildcards(root, "/src/*.nope", true), []);
    assert.deepEqual(await resolveWildcards(root, "/missing/*", true), []);
  });

  it("returns a path without wildcards as it is", async () => {
    assert.deepEqual(await resolveWildcards(root, "src/none", true), ["/src/none"]);
  });

  it("lists matching directories themselves rather than their contents", async () => {
    assert.deepEqual(await resolveWildcards(join(root, "src"), "/[xy]", true), ["/x", "/y"]);
  });
});
