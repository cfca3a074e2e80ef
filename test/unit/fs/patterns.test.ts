import assert from "node:assert/strict";
import { InvalidPatternError, PatternMatcher, parseIgnoreFile } from "../../../src/fs/patterns.js";

const matches = (patterns: string[], path: string) => new PatternMatcher(patterns).matches(path);

describe("PatternMatcher.matches", () => {
  it("matches a single * within one path component", () => {
    assert.ok(matches(["*.go"], "main.go"));
    assert.ok(!matches(["*.go"], "cmd/main.go"));
  });

  it("matches ** across any number of components, including none", () => {
    assert.ok(matches(["**/*.go"], "main.go"));
    assert.ok(matches(["**/*.go"], "a/b/c/main.go"));
    assert.ok(matches(["a/**/z"], "a/z"));
    assert.ok(matches(["a/**/z"], "a/b/c/z"));
    assert.ok(matches(["**"], "anything/at/all"));
  });

  it("matches everything below a matching directory", () => {
    assert.ok(matches(["node_modules"], "node_modules/x/y.js"));
    assert.ok(matches(["build/*"], "build/out/deep/file"));
  });

  it("lets a later ! exception re-include a path", () => {
    assert.ok(!matches(["*.md", "!README.md"], "README.md"));
    assert.ok(matches(["*.md", "!README.md"], "CHANGES.md"));
  });

  it("lets a pattern after an exception exclude again", () => {
    assert.ok(matches(["docs", "!docs/keep", "docs/keep/tmp"], "docs/keep/tmp/x"));
    assert.ok(!matches(["docs", "!docs/keep", "docs/keep/tmp"], "docs/keep/y"));
  });

  it("cleans leading / and ./ of patterns and paths", () => {
    assert.ok(matches(["/foo/bar"], "foo/bar"));
    assert.ok(matches(["./foo"], "./foo/x"));
    assert.ok(!matches(["foo", "!./foo/x"], "foo/x"));
  });

  it("matches ? and character classes", () => {
    assert.ok(matches(["file?.txt"], "file1.txt"));
    assert.ok(matches(["[a-c].txt"], "b.txt"));
    assert.ok(!matches(["[a-c].txt"], "d.txt"));
  });

  it("keeps patternmatcher's prefix shortcut for a trailing **", () => {
    assert.ok(matches(["foo**"], "foobar/baz"));
    assert.ok(matches(["dir/**"], "dir/a"));
  });

  it("treats regular expression characters in patterns literally", () => {
    assert.ok(matches(["a.(b)+{c}$"], "a.(b)+{c}$"));
    assert.ok(!matches(["a.b*"], "axb"));
  });

  it("rejects a lone ! and malformed classes", () => {
    assert.throws(() => new PatternMatcher(["!"]), InvalidPatternError);
    assert.throws(() => new PatternMatcher(["[a-"]), InvalidPatternError);
  });
});

describe("PatternMatcher.subtreeMayDiffer", () => {
  it("says an excluded directory needs no reading when no exception can reach inside", () => {
    const m = new PatternMatcher(["node_modules", "!src/keep"]);
    assert.equal(m.subtreeMayDiffer("node_modules"), false);
  });

  it("says an excluded directory must be read when an exception names something inside", () => {
    const m = new PatternMatcher(["docs", "!docs/keep.md"]);
    assert.equal(m.subtreeMayDiffer("docs"), true);
  });

  it("says an unmatched directory must be read when an include pattern could match inside", () => {
    const m = new PatternMatcher(["a/*/c.txt"]);
    assert.equal(m.subtreeMayDiffer("a"), true);
    assert.equal(m.subtreeMayDiffer("a/b"), true);
    assert.equal(m.subtreeMayDiffer("x"), false);
  });

  it("assumes ** can reach anywhere", () => {
    assert.equal(new PatternMatcher(["**/*.go"]).subtreeMayDiffer("deep/dir"), true);
  });
});

describe("parseIgnoreFile", () => {
  it("skips comments and blank lines, trims, cleans and makes patterns relative", () => {
    const text = "\uFEFF# comment\n\n  /build/  \r\n!./keep\n*.log\n";
    assert.deepEqual(parseIgnoreFile(text), ["build", "!keep", "*.log"]);
  });
});
