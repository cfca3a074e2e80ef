// biome-ignore-all lint/suspicious/noTemplateCurlyInString: shell variable syntax in plain strings is the test data
import assert from "node:assert/strict";
import {
  convertShellPatternToRegex,
  emptyEnv,
  envsFromRecord,
  envsFromSlice,
  reversePattern,
  ShellLex,
  ShellLexError,
} from "../../../src/frontend/dockerfile/shell/lex.js";

interface Case {
  input: string;
  env: Record<string, string>;
  expected?: string;
  error?: true;
  matched?: string[];
  unmatched?: string[];
}

const XB = { FOO: "xxx", BAR: "" };

// BuildKit's TestProcessWithMatches table.
const cases: Case[] = [
  { input: "x", env: { DUMMY: "dummy" }, expected: "x" },
  { input: "x ${UNUSED}", env: { DUMMY: "dummy" }, expected: "x ", unmatched: ["UNUSED"] },
  { input: "x ${FOO}", env: { FOO: "y" }, expected: "x y", matched: ["FOO"] },
  {
    input: "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
    env: XB,
    expected: "xxx  ccc",
    matched: ["FOO", "BAR"],
    unmatched: ["BAZ"],
  },
  {
    input: "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
    env: XB,
    expected: "xxx bbb ccc",
    matched: ["FOO", "BAR"],
    unmatched: ["BAZ"],
  },
  { input: "${FOO:-}", env: XB, expected: "xxx", matched: ["FOO"] },
  { input: "${FOO:-}", env: {}, expected: "", unmatched: ["FOO"] },
  {
    input: "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}",
    env: XB,
    expected: "aaa bbb ",
    matched: ["FOO", "BAR"],
    unmatched: ["BAZ"],
  },
  {
    input: "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
    env: XB,
    expected: "aaa  ",
    matched: ["FOO", "BAR"],
    unmatched: ["BAZ"],
  },
  { input: "${FOO?aaa}", env: XB, expected: "xxx", matched: ["FOO"] },
  { input: "${BAR?bbb}", env: XB, expected: "", matched: ["BAR"] },
  { input: "${BAZ?ccc}", env: XB, error: true },
  { input: "${FOO:?aaa}", env: XB, expected: "xxx", matched: ["FOO"] },
  { input: "${BAR:?bbb}", env: XB, error: true },
  { input: "${BAZ:?ccc}", env: XB, error: true },
  { input: "${BAZ:?}", env: XB, error: true },
  { input: "${FOO=aaa}", env: XB, error: true },
  { input: "${FOO=:aaa}", env: XB, error: true },
  { input: "${FOO=}", env: {}, error: true },
  {
    input: "${FOO#()[]{\\}^$.\\*\\?|\\\\}",
    env: { FOO: "()[]{}^$.*?|\\x" },
    expected: "x",
    matched: ["FOO"],
  },
  { input: "${FOO%%\\**}", env: { FOO: "xx**" }, expected: "xx", matched: ["FOO"] },
  { input: "${FOO#*x*y}", env: { FOO: "xxyy" }, expected: "y", matched: ["FOO"] },
  { input: "${FOO#*}", env: { FOO: "xxyy" }, expected: "xxyy", matched: ["FOO"] },
  { input: "${FOO#$BAR}", env: { FOO: "xxyy", BAR: "x" }, expected: "xyy", matched: ["FOO", "BAR"] },
  { input: "${FOO#$BAR}", env: { FOO: "xxyy", BAR: "" }, expected: "xxyy", matched: ["FOO", "BAR"] },
  { input: "${FOO#}", env: { FOO: "xxyy" }, expected: "xxyy", matched: ["FOO"] },
  { input: "${FOO##*x}", env: { FOO: "xxyy" }, expected: "yy", matched: ["FOO"] },
  { input: "${FOO##}", env: { FOO: "xxyy" }, expected: "xxyy", matched: ["FOO"] },
  { input: "${FOO#?\\?}", env: { FOO: "???y" }, expected: "?y", matched: ["FOO"] },
  {
    input: "${ABC:-.}${FOO%x}${ABC:-.}",
    env: { FOO: "xxyy" },
    expected: ".xxyy.",
    matched: ["FOO"],
    unmatched: ["ABC"],
  },
  { input: "${FOO%%\\**\\*}", env: { FOO: "a***yy*" }, expected: "a", matched: ["FOO"] },
  { input: "${FOO%}", env: { FOO: "xxyy" }, expected: "xxyy", matched: ["FOO"] },
  { input: "${FOO%%$BAR}", env: { FOO: "xxyy", BAR: "" }, expected: "xxyy", matched: ["FOO", "BAR"] },
  { input: "${FOO:#}", env: {}, error: true },
  { input: "${FOO:##}", env: {}, error: true },
  { input: "${FOO:%}", env: {}, error: true },
  { input: "${FOO:%%}", env: {}, error: true },
  {
    input: "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
    env: { FOO: "/foo*/*/*.txt", NEEDLE: "\\*/" },
    expected: "/foo.*/*.txt - /foo..*.txt",
    matched: ["FOO", "NEEDLE"],
  },
  {
    input: "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
    env: { FOO: "/tmp/tmp/bar.txt", NEEDLE: "/tmp" },
    expected: "/tmp/bar.txt - /bar.txt",
    matched: ["FOO", "NEEDLE"],
  },
  {
    input: "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
    env: { FOO: "/a/foo/b/c.txt", NEEDLE: "/?/", REPLACEMENT: "/" },
    expected: "/foo/b/c.txt - /foo/c.txt",
    matched: ["FOO", "NEEDLE", "REPLACEMENT"],
  },
  {
    input: "${FOO/$NEEDLE/$REPLACEMENT}",
    env: { FOO: "http://google.de", NEEDLE: "http://", REPLACEMENT: "https://" },
    expected: "https://google.de",
    matched: ["FOO", "NEEDLE", "REPLACEMENT"],
  },
  { input: "${FOO//\\//\\/}", env: { FOO: "/tmp/foo.txt" }, expected: "\\/tmp\\/foo.txt", matched: ["FOO"] },
  { input: "${FOO/$BAR/ww}", env: { FOO: "xxyy", BAR: "" }, expected: "wwxxyy", matched: ["FOO", "BAR"] },
  { input: "${FOO//ww}", env: { FOO: "xxyy" }, error: true },
  { input: "${FOO//}", env: { FOO: "xxyy" }, error: true },
  { input: "${FOO///}", env: { FOO: "xxyy" }, expected: "xxyy", matched: ["FOO"] },
  { input: "${FOO///}", env: {}, expected: "", unmatched: ["FOO"] },
];

describe("shell lexer", () => {
  describe("expansion with matched and unmatched variables", () => {
    for (const c of cases) {
      it(`${c.input} with ${JSON.stringify(c.env)}`, () => {
        const lex = new ShellLex("\\");
        if (c.error) {
          assert.throws(() => lex.processWordWithMatches(c.input, envsFromRecord(c.env)), ShellLexError);
          return;
        }
        const r = lex.processWordWithMatches(c.input, envsFromRecord(c.env));
        assert.equal(r.result, c.expected);
        assert.deepEqual([...r.matched].sort(), [...(c.matched ?? [])].sort());
        assert.deepEqual([...r.unmatched].sort(), [...(c.unmatched ?? [])].sort());
      });
    }
  });

  it("expands the release-file naming idiom with an optional variant", () => {
    const release =
      "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
    const lex = new ShellLex();
    const base = { VERSION: "v1.2.3", TARGETOS: "linux" };
    assert.equal(
      lex.processWord(release, envsFromRecord({ ...base, TARGETARCH: "arm", TARGETVARIANT: "v7" })),
      "something-v1.2.3.linux-arm-v7.tar.gz",
    );
    assert.equal(
      lex.processWord(release, envsFromRecord({ ...base, TARGETARCH: "arm64", TARGETVARIANT: "" })),
      "something-v1.2.3.linux-arm64.tar.gz",
    );
    assert.equal(
      lex.processWord(release, envsFromRecord({ ...base, TARGETARCH: "arm64" })),
      "something-v1.2.3.linux-arm64.tar.gz",
    );
  });

  it("reports the message of ${VAR:?message} and ${VAR?message}", () => {
    const lex = new ShellLex();
    const noEmpty = "${VAR:?message here$ARG}";
    const noUnset = "${VAR?message here$ARG}";
    assert.equal(lex.processWord(noEmpty, envsFromSlice(["VAR=plain", "ARG=x"])), "plain");
    assert.throws(() => lex.processWord(noEmpty, envsFromSlice(["VAR=", "ARG=x"])), /VAR: message herex/);
    assert.throws(() => lex.processWord(noEmpty, envsFromSlice(["ARG=x"])), /message herex/);
    assert.equal(lex.processWord(noUnset, envsFromSlice(["VAR=plain", "ARG=x"])), "plain");
    assert.equal(lex.processWord(noUnset, envsFromSlice(["VAR=", "ARG=x"])), "");
    assert.throws(() => lex.processWord(noUnset, envsFromSlice(["ARG=x"])), /message herex/);
    assert.throws(() => lex.processWord("${X:?}", emptyEnv), /X: is not allowed to be unset/);
    assert.throws(() => lex.processWord("${X:?}", envsFromSlice(["X="])), /X: is not allowed to be empty/);
  });

  it("wraps errors with the word, as BuildKit does", () => {
    assert.throws(
      () => new ShellLex().processWord('a"b', emptyEnv),
      (e: unknown) =>
        e instanceof ShellLexError &&
        e.message ===
          'failed to process "a\\"b": unexpected end of statement while looking for matching double-quote',
    );
    assert.throws(() => new ShellLex().processWord("${", emptyEnv), /syntax error: missing '}'/);
    assert.throws(() => new ShellLex().processWord("${a:-b", emptyEnv), /syntax error: missing '}'/);
    // Go formats the end of input as U+FFFD here
    assert.throws(() => new ShellLex().processWord("${a", emptyEnv), /unsupported modifier \(\ufffd\)/);
    assert.throws(() => new ShellLex().processWord("${}", emptyEnv), /bad substitution/);
    assert.throws(
      () => new ShellLex().processWord("${a:x}", emptyEnv),
      /unsupported modifier \(:x\) in substitution/,
    );
    assert.throws(() => new ShellLex().processWord("${a/x", emptyEnv), /missing '\/' in \$\{\}/);
    assert.throws(
      () => new ShellLex().processWord("${a#\\x}", envsFromSlice(["a=1"])),
      /invalid escape '\\x'/,
    );
  });

  it("looks variables up by the last assignment and keeps empty values set", () => {
    const lex = new ShellLex();
    assert.equal(lex.processWord("[$foo]", envsFromSlice([])), "[]");
    assert.equal(lex.processWord("[$foo]", envsFromSlice(["foo"])), "[]");
    assert.deepEqual([...lex.processWordWithMatches("$foo", envsFromSlice(["foo"])).matched], ["foo"]);
    assert.equal(lex.processWord("$car", envsFromSlice(["foo=bar", "car=hat", "car=bike"])), "bike");
  });

  it("splits words after expansion, unless quoted", () => {
    const env = envsFromSlice(["X=a  b", "E="]);
    const lex = new ShellLex();
    assert.deepEqual(lex.processWords("1 $X 2", env), ["1", "a", "b", "2"]);
    assert.deepEqual(lex.processWords('1 "$X" 2', env), ["1", "a  b", "2"]);
    assert.deepEqual(lex.processWords("$E", env), []);
    assert.deepEqual(lex.processWords('""', env), []);
  });

  it("drops a partial word before a nested ${…} when splitting, as BuildKit's shared buffer does", () => {
    // BuildKit ≥ 0.15 resets one words buffer for nested expansions; keep the same result.
    assert.deepEqual(new ShellLex().processWords("a${x:-b}c", emptyEnv), ["bc"]);
    assert.equal(new ShellLex().processWord("a${x:-b}c", emptyEnv), "abc");
  });

  it("uses the backtick as escape token when asked", () => {
    const lex = new ShellLex("`");
    assert.equal(lex.processWord("a`$b\\c", envsFromSlice(["b=x"])), "a$b\\c");
    assert.equal(lex.processWord('"a`"b"', emptyEnv), 'a"b');
  });

  it("can leave unset variables and quotes as written", () => {
    const lex = new ShellLex();
    lex.skipUnsetEnv = true;
    lex.rawQuotes = true;
    assert.equal(
      lex.processWord("$A ${B} ${C:-x} ${D/a/b} '$E'", envsFromSlice(["A=1"])),
      "1 ${B} ${C:-x} ${D/a/b} '$E'",
    );
    const raw = new ShellLex();
    raw.rawEscapes = true;
    assert.equal(raw.processWord("a\\ b", emptyEnv), "a\\ b");
    const noQuotes = new ShellLex();
    noQuotes.skipProcessQuotes = true;
    assert.equal(noQuotes.processWord("'a' \"$X\"", envsFromSlice(["X=1"])), "'a' \"1\"");
  });

  it("handles special and positional parameters", () => {
    const lex = new ShellLex();
    assert.equal(lex.processWord("he$1x", emptyEnv), "hex");
    assert.equal(lex.processWord("$12x", envsFromSlice(["12=y"])), "yx");
    assert.equal(lex.processWord("a$@b", emptyEnv), "ab");
    assert.equal(lex.processWord("$.", emptyEnv), "$.");
  });

  it("replaces like Go's ReplaceAllString (no empty match right after a match)", () => {
    const env = envsFromSlice(["V=abc"]);
    assert.equal(new ShellLex().processWord("${V///X}", env), "XaXbXcX");
    assert.equal(new ShellLex().processWord("${V//b*/X}", env), "aX");
    assert.equal(new ShellLex().processWord("${V//*/X}", env), "X");
  });

  it("converts shell patterns to regular expressions", () => {
    assert.equal(convertShellPatternToRegex("*", true, true), "^[^\\n]*");
    assert.equal(convertShellPatternToRegex("?", true, true), "^[^\\n]");
    assert.equal(convertShellPatternToRegex("\\*", true, true), "^\\*");
    assert.equal(
      convertShellPatternToRegex("(()[]{\\}^$.\\*\\?|\\\\", true, true),
      "^\\(\\(\\)\\[\\]\\{\\}\\^\\$\\.\\*\\?\\|\\\\",
    );
    for (const bad of ["\\", "\\x", "\\\\\\"])
      assert.throws(() => convertShellPatternToRegex(bad, true, true), bad);
  });

  it("reverses patterns keeping escapes in front", () => {
    assert.equal(reversePattern("a\\*c"), "c\\*a");
    assert.equal(reversePattern("\\\\\\ab"), "b\\a\\\\");
    assert.equal(reversePattern("ab\\"), "\\ba");
    assert.equal(reversePattern("👽\\🚀🖖"), "🖖\\🚀👽");
    assert.equal(reversePattern("\\\\b"), "b\\\\");
  });
});
