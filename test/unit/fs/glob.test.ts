import assert from "node:assert/strict";
import { BadPatternError, hasWildcards, matchGlob } from "../../../src/fs/glob.js";

describe("matchGlob", () => {
  it("matches * and ? within one component only", () => {
    assert.ok(matchGlob("*.txt", "a.txt"));
    assert.ok(!matchGlob("*.txt", "d/a.txt"));
    assert.ok(matchGlob("a?c", "abc"));
    assert.ok(!matchGlob("a?c", "a/c"));
  });

  it("matches character classes, negated with ^", () => {
    assert.ok(matchGlob("[a-c]x", "bx"));
    assert.ok(!matchGlob("[a-c]x", "dx"));
    assert.ok(matchGlob("[^a-c]x", "dx"));
  });

  it("treats a backslash-escaped wildcard as a literal", () => {
    assert.ok(matchGlob("a\\*", "a*"));
    assert.ok(!matchGlob("a\\*", "ab"));
  });

  it("rejects malformed classes", () => {
    assert.throws(() => matchGlob("[a-", "a"), BadPatternError);
    assert.throws(() => matchGlob("[]", "a"), BadPatternError);
  });
});

describe("hasWildcards", () => {
  it("sees *, ? and [ but not escaped ones", () => {
    assert.ok(hasWildcards("a/*.txt"));
    assert.ok(hasWildcards("[ab]"));
    assert.ok(!hasWildcards("a\\*b"));
    assert.ok(!hasWildcards("plain/path"));
  });
});
