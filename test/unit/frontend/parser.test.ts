import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Heredoc } from "../../../src/frontend/dockerfile/parser/ast.js";
import {
  DockerfileError,
  detectDirective,
  dumpAst,
  dumpAstFile,
  heredocsFromLine,
  parseDockerfile,
  parseHeredoc,
} from "../../../src/frontend/dockerfile/parser/index.js";
import { extractBuilderFlags, parseWords } from "../../../src/frontend/dockerfile/parser/line-parsers.js";
import { goQuote } from "../../../src/frontend/dockerfile/shell/quote.js";

const dump = (text: string) => dumpAst(text).trimEnd().split("\n");
const backslash = { escapeToken: "\\" };

describe("Dockerfile parser", () => {
  describe("lines and continuations", () => {
    it("records where each instruction starts and ends", () => {
      const text = [
        "# comment", // 1
        "", // 2
        "", // 3
        "", // 4
        "FROM brew", // 5
        "# another comment", // 6
        "", // 7
        "", // 8
        "", // 9
        "", // 10
        "RUN echo \\", // 11
        "  hi", // 12
        "", // 13
        "", // 14
        "# more", // 15
        "", // 16
        "RUN <<EOF", // 17
        "one", // 18
        "two", // 19
        "EOF", // 20
      ].join("\n");
      const { ast } = parseDockerfile(text);
      assert.equal(ast.startLine, 5);
      assert.equal(ast.endLine, 20);
      assert.deepEqual(
        ast.children.map((c) => [c.startLine, c.endLine]),
        [
          [5, 5],
          [11, 12],
          [17, 20],
        ],
      );
    });

    it("joins continuation lines without separators, keeping their leading white space", () => {
      assert.deepEqual(dump("FROM a\nRUN echo \\\n   hi \\\n\tthere"), [
        '(from "a")',
        '(run "echo    hi \\tthere")',
      ]);
    });

    it("skips comments and collects a warning for empty lines inside a continuation", () => {
      const text = [
        "FROM alpine:3.6",
        "RUN valid \\",
        "    continuation",
        "RUN something \\",
        "",
        "    following \\",
        "",
        "    more",
        "RUN another \\",
        "",
        "    thing",
        "RUN non-indented \\",
        "# this is a comment",
        "   after-comment",
        "RUN indented \\",
        "    # this is an indented comment",
        "    comment",
      ].join("\n");
      const result = parseDockerfile(text);
      assert.equal(result.warnings.length, 2);
      assert.match(
        result.warnings[0]!.short,
        /Empty continuation line found in: RUN something {5}following {5}more/,
      );
      assert.match(result.warnings[1]!.short, /RUN another {5}thing/);
      assert.equal(result.warnings[0]!.rule, "NoEmptyContinuation");
      assert.equal(result.warnings[0]!.location.startLine, 8);
      assert.match(result.warnings[0]!.detail, /will become errors in a future release/);
      assert.deepEqual(result.ast.children.map((c) => c.original).slice(4), [
        "RUN non-indented    after-comment",
        "RUN indented     comment",
      ]);
    });

    it("accepts a continuation at the end of the file", () => {
      assert.deepEqual(dump("FROM a\nRUN x \\"), ['(from "a")', '(run "x")']);
    });

    it("does not continue after an escaped escape token", () => {
      assert.deepEqual(dump("FROM a\nRUN x \\\\\nRUN y"), ['(from "a")', '(run "x \\\\\\\\")', '(run "y")']);
    });

    it("handles CRLF line endings", () => {
      assert.deepEqual(dump("FROM a\r\nRUN echo \\\r\n  hi\r\n"), ['(from "a")', '(run "echo   hi")']);
    });

    it("strips a byte-order mark", () => {
      assert.deepEqual(dump("\ufeffFROM a\n"), ['(from "a")']);
    });

    it("fails on a file with no instructions", () => {
      assert.throws(() => parseDockerfile("# nothing\n\n   \n"), /file with no instructions/);
      assert.throws(() => parseDockerfile(""), /file with no instructions/);
    });

    it("fails on lines longer than BuildKit's scanner allows", () => {
      const text = `\n\t\tFROM image\n\t\tLABEL test=${"a".repeat(64 * 1024)}\n`;
      assert.throws(() => parseDockerfile(text), /dockerfile line greater than max allowed size of 65535/);
    });

    it("keeps the comments above an instruction, an empty comment resetting them", () => {
      const { ast } = parseDockerfile("# a\n#\n# b\n# c\nFROM x\nRUN y\n");
      assert.deepEqual(ast.children[0]!.prevComment, ["b", "c"]);
      assert.deepEqual(ast.children[1]!.prevComment, []);
    });
  });

  describe("directives", () => {
    it("switches the escape token with # escape=`", () => {
      const r = parseDockerfile("# escape=`\nFROM a\nRUN echo `\n  hi\nCOPY c:\\a d:\\b\n");
      assert.equal(r.escapeToken, "`");
      assert.equal(r.directives.escape, "`");
      assert.deepEqual(dumpAst("# escape=`\nFROM a\nRUN echo `\n  hi\n").trimEnd().split("\n"), [
        '(from "a")',
        '(run "echo   hi")',
      ]);
    });

    it("records syntax and check directives with their lines", () => {
      const r = parseDockerfile("# syntax=docker/dockerfile:1\n#check=skip=all\nFROM a\n");
      assert.equal(r.directives.syntax, "docker/dockerfile:1");
      assert.equal(r.directives.check, "skip=all");
      assert.deepEqual(r.directives.lines, { syntax: 1, check: 2 });
      assert.deepEqual(r.ast.children[0]!.prevComment, []);
    });

    it("accepts directive names in any case", () => {
      assert.equal(parseDockerfile("# EScape=`\nFROM a\n").escapeToken, "`");
    });

    it("only reads directives at the very top", () => {
      assert.equal(parseDockerfile("# hello\n# escape=`\nFROM a\n").escapeToken, "\\");
      assert.equal(parseDockerfile("\n# escape=`\nFROM a\n").escapeToken, "\\");
      assert.equal(parseDockerfile("FROM a\n# escape=`\n").escapeToken, "\\");
    });

    it("rejects a repeated directive and a bad escape token", () => {
      assert.throws(
        () => parseDockerfile("# escape=`\n# escape=\\\nFROM a"),
        (e: unknown) =>
          e instanceof DockerfileError && e.line === 2 && /only one escape parser directive/.test(e.message),
      );
      assert.throws(
        () => parseDockerfile("# escape=x\nFROM a"),
        /invalid escape token 'x' does not match ` or \\/,
      );
    });

    it("detects directives in a header the way BuildKit's DetectSyntax does", () => {
      assert.deepEqual(
        detectDirective("syntax", "# syntax = dockerfile:experimental // opts\nFROM busybox\n", true),
        {
          value: "dockerfile:experimental",
          fullValue: "dockerfile:experimental // opts",
          line: 1,
        },
      );
      assert.equal(detectDirective("syntax", "#!/bin/sh\n# syntax = x\nFROM busybox\n", true)?.line, 2);
      assert.equal(detectDirective("syntax", "#!/bin/sh\n\n# syntax = x\n", true), undefined);
      assert.equal(detectDirective("syntax", "//syntax=foo\n//key=value", true)?.value, "foo");
      assert.equal(detectDirective("syntax", '{"syntax": "foo", "bar": ["abc"]}', true)?.value, "foo");
      assert.equal(detectDirective("syntax", '{"syntax": "foo"}\n# syntax=bar', true), undefined);
      assert.equal(detectDirective("check", "//check=skip=all\n//key=value"), undefined);
      assert.equal(
        detectDirective("syntax", "\ufeff# syntax = myfrontend\nFROM busybox\n", true)?.value,
        "myfrontend",
      );
    });
  });

  describe("argument forms", () => {
    it("parses JSON arrays of strings, with JSON escapes", () => {
      assert.deepEqual(dump('CMD []\nCMD [""]\nCMD\t[\t"a",\t"b"\t]\t\nCMD ["\\" \\\\ \\/ \\b \\u0000"]'), [
        "(cmd)",
        '(cmd "")',
        '(cmd "a" "b")',
        '(cmd "\\" \\\\ / \\b \\x00")',
      ]);
      assert.equal(parseDockerfile('RUN ["a"]').ast.children[0]!.attributes.json, true);
      assert.equal(parseDockerfile("RUN a").ast.children[0]!.attributes.json, undefined);
    });

    it("rejects JSON arrays holding something other than strings", () => {
      for (const bad of ['["a",42,"b"]', '["a",{},"b"]', '["a",["c"],"b"]', '["a",true]', '["a",null]']) {
        assert.throws(() => parseDockerfile(`CMD ${bad}`), /arrays must be comprised of strings only/, bad);
      }
    });

    it("falls back to shell form for invalid JSON", () => {
      assert.deepEqual(dump("CMD ['a']\nCMD [\"a\"\nCOPY [a b] c"), [
        "(cmd \"['a']\")",
        '(cmd "[\\"a\\"")',
        '(copy "[a" "b]" "c")',
      ]);
    });

    it("parses ENV and LABEL pairs, legacy and key=value", () => {
      assert.deepEqual(dump('ENV a b c\nENV a=b c="d e"\nLABEL "x y"=z'), [
        '(env "a" "b c" "")',
        '(env "a" "b" "=" "c" "\\"d e\\"" "=")',
        '(label "\\"x y\\"" "z" "=")',
      ]);
      assert.throws(() => parseDockerfile("ENV a=b c"), /can't find = in "c"/);
      assert.throws(() => parseDockerfile("LABEL a"), /LABEL must have two arguments/);
    });

    it("splits words keeping quotes and escapes", () => {
      assert.deepEqual(parseWords("foo bar 'abc xyz'", backslash), ["foo", "bar", "'abc xyz'"]);
      assert.deepEqual(parseWords("foo\\ bar", backslash), ["foo\\ bar"]);
      assert.deepEqual(parseWords('föo bàr "âbc xÿz"', backslash), ["föo", "bàr", '"âbc xÿz"']);
      assert.deepEqual(parseWords("a ''", backslash), ["a", "''"]);
    });

    it("parses ARG, EXPOSE, FROM, VOLUME word lists", () => {
      assert.deepEqual(
        dump('ARG a b=c d="e f"\nEXPOSE 80 443/tcp\nFROM x AS y\nVOLUME ["/a", "/b"]\nVOLUME /c /d'),
        [
          '(arg "a" "b=c" "d=\\"e f\\"")',
          '(expose "80" "443/tcp")',
          '(from "x" "AS" "y")',
          '(volume "/a" "/b")',
          '(volume "/c" "/d")',
        ],
      );
    });

    it("nests ONBUILD and HEALTHCHECK CMD", () => {
      assert.deepEqual(
        dump('ONBUILD RUN echo hi\nONBUILD --x=1 COPY --from=a b c\nHEALTHCHECK --interval=5s CMD ["x"]'),
        [
          '(onbuild (run "echo hi"))',
          '(onbuild ["--x=1"] (copy ["--from=a"] "b" "c"))',
          '(healthcheck ["--interval=5s"] "CMD" "x")',
        ],
      );
    });

    it("lower-cases keywords rune by rune as Go does", () => {
      assert.deepEqual(dump("MA\u0130NTAINER x\nΣΑΣ y"), ['(maintainer "x")', '(σασ "")']);
    });

    it("keeps unknown instructions with an empty argument", () => {
      assert.deepEqual(dump("FOO bar baz"), ['(foo "")']);
    });

    it("extracts flags with quotes, escapes and --", () => {
      assert.deepEqual(extractBuilderFlags('--a=1 --b="x y" --c --d=\\"q rest', backslash), {
        rest: "rest",
        flags: ["--a=1", "--b=x y", "--c", '--d="q'],
      });
      assert.deepEqual(extractBuilderFlags("--a -- --b c", backslash), { rest: " --b c", flags: ["--a"] });
      assert.deepEqual(extractBuilderFlags("--a=1", backslash), { rest: "", flags: ["--a=1"] });
      assert.deepEqual(extractBuilderFlags("-a b", backslash), { rest: "-a b", flags: [] });
    });

    it("quotes dump arguments as Go's %q", () => {
      assert.equal(goQuote('a"b\\c\n\t\x01\x7f'), '"a\\"b\\\\c\\n\\t\\x01\\x7f"');
      assert.equal(goQuote("♥ é"), '"♥ é"');
      assert.equal(goQuote("\u200b\u{1F600}\u{E0001}"), '"\\u200b\u{1F600}\\U000e0001"');
    });
  });

  describe("heredocs", () => {
    const text = `
FROM alpine:3.6

ENV NAME=me

RUN ls

USER <<INVALID
INVALID

RUN <<EMPTY
EMPTY

RUN 3<<EMPTY2
EMPTY2

RUN "<<NOHEREDOC"

RUN <<INDENT
\tfoo
\tbar
INDENT

RUN <<-UNINDENT
\tbaz
\tquux
UNINDENT

RUN <<-UNINDENT2
\tbaz
\tquux
\tUNINDENT2

RUN <<-'NOEXPAND'
\tdon't expand $NAME
NOEXPAND

RUN <<COMMENT
# internal comment
echo foo bar # trailing comment
COMMENT

RUN --mount=type=cache,target=/foo <<MOUNT
echo hello
MOUNT

COPY <<FILE1 <<FILE2 /dest
content 1
FILE1
content 2
FILE2

COPY <<X <<Y /dest
Y
X
X
Y

RUN <<COMPLEX python3
print('hello world')
COMPLEX

RUN <<eo'f'
echo foo
eof

RUN <<eo\\'f
echo foo
eo'f

RUN <<'e'o\\'f
echo foo
eo'f

RUN <<'one two'
echo bar
one two

RUN <<$EOF
$EOF

RUN <<  EOF
EOF

RUN <<  EOF  > foo
EOF
\t`;
    const h = (name: string, content: string, more: Partial<Heredoc> = {}): Heredoc => ({
      name,
      fileDescriptor: 0,
      expand: true,
      chomp: false,
      content,
      ...more,
    });
    const expected: Heredoc[][] = [
      [], // ENV
      [], // RUN ls
      [], // USER <<INVALID
      [], // INVALID
      [h("EMPTY", "")],
      [h("EMPTY2", "", { fileDescriptor: 3 })],
      [], // "<<NOHEREDOC"
      [h("INDENT", "\tfoo\n\tbar\n")],
      [h("UNINDENT", "\tbaz\n\tquux\n", { chomp: true })],
      [h("UNINDENT2", "\tbaz\n\tquux\n", { chomp: true })],
      [h("NOEXPAND", "\tdon't expand $NAME\n", { chomp: true, expand: false })],
      [h("COMMENT", "# internal comment\necho foo bar # trailing comment\n")],
      [h("MOUNT", "echo hello\n")],
      [h("FILE1", "content 1\n"), h("FILE2", "content 2\n")],
      [h("X", "Y\n"), h("Y", "X\n")],
      [h("COMPLEX", "print('hello world')\n")],
      [h("eof", "echo foo\n", { expand: false })],
      [h("eo'f", "echo foo\n")],
      [h("eo'f", "echo foo\n", { expand: false })],
      [h("one two", "echo bar\n", { expand: false })],
      [h("$EOF", "")],
      [h("EOF", "")],
      [h("EOF", "")],
    ];

    it("reads heredoc bodies for RUN, COPY and ADD", () => {
      const { ast } = parseDockerfile(text);
      expected.forEach((want, i) => {
        assert.deepEqual(
          ast.children[i + 1]!.heredocs,
          want,
          `instruction ${i + 2}: ${ast.children[i + 1]!.original}`,
        );
      });
    });

    it("ignores heredoc markers in JSON form", () => {
      const { ast } = parseDockerfile('FROM a\nRUN ["whoami"]\nRUN ["<<EOF"]\nRUN ["<<\'EOF\'"]\n');
      for (const c of ast.children) assert.deepEqual(c.heredocs, []);
    });

    it("reads heredocs of an ONBUILD trigger", () => {
      const { ast } = parseDockerfile("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n");
      assert.deepEqual(ast.children[1]!.heredocs, [h("EOF", "echo hi\n")]);
      assert.equal(ast.children[1]!.endLine, 4);
    });

    it("fails on an unterminated heredoc", () => {
      assert.throws(
        () => parseDockerfile("FROM a\nRUN <<EOF\necho hi\n"),
        (e: unknown) =>
          e instanceof DockerfileError && /unterminated heredoc/.test(e.message) && e.line === 2,
      );
    });

    it("recognises heredoc words", () => {
      for (const src of [
        "<<EOF",
        "<<'EOF'",
        '<<"EOF"',
        "<<-EOF",
        "<<-'EOF'",
        '<<-"EOF"',
        '<<EO"F"',
        "<< EOF",
        "<<- EOF",
      ]) {
        assert.equal(parseHeredoc(src)?.name, "EOF", src);
      }
      for (const src of ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"]) {
        assert.equal(parseHeredoc(src), undefined, src);
      }
      for (const src of ["<<'EOF", '<<"EOF', "<<EOF'", '<<EOF"']) {
        assert.throws(() => parseHeredoc(src), DockerfileError, src);
      }
    });

    it("finds the heredocs of a line", () => {
      const names = (line: string) => heredocsFromLine(line).map((d) => d.name);
      assert.deepEqual(names("RUN <<EOF"), ["EOF"]);
      // the lexer splits `<<-` from a following word, so this is no heredoc (as in BuildKit)
      assert.deepEqual(names("RUN <<- EOF"), []);
      assert.deepEqual(names("RUN << -EOF"), ["-EOF"]);
      assert.deepEqual(names("RUN 4<<EOF"), ["EOF"]);
      assert.deepEqual(names("RUN <<EOF <<EOF2"), ["EOF", "EOF2"]);
      assert.deepEqual(names("RUN '<<EOF'"), []);
      assert.deepEqual(names('RUN "<<EOF"'), []);
    });
  });

  describe("errors", () => {
    it("carry file, line, the line's text and render them", () => {
      try {
        parseDockerfile("FROM a\nENV\nENV PATH\n", { fileName: "app.Dockerfile" });
        assert.fail("expected an error");
      } catch (e) {
        assert.ok(e instanceof DockerfileError);
        assert.equal(e.fileName, "app.Dockerfile");
        assert.equal(e.line, 3);
        assert.equal(e.lineText, "ENV PATH");
        assert.equal(e.detail, "ENV must have two arguments");
        assert.equal(
          e.format(),
          [
            "app.Dockerfile:3",
            "--------------------",
            "    3 | ENV PATH",
            "--------------------",
            e.detail,
          ].join("\n"),
        );
        assert.equal(e.message, "app.Dockerfile:3: ENV must have two arguments");
      }
    });
  });

  describe("dumpAstFile", () => {
    it("dumps a file on disk", async () => {
      const dir = await mkdtemp(join(tmpdir(), "kiln-parser-"));
      try {
        const file = join(dir, "Dockerfile");
        await writeFile(file, "FROM scratch\nCOPY --chown=1 a /b\n");
        assert.equal(await dumpAstFile(file), '(from "scratch")\n(copy ["--chown=1"] "a" "/b")\n');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});
