// Dockerfile text → AST, following BuildKit's frontend/dockerfile/parser: line continuations with
// the escape token, parser directives at the top, comments and empty lines inside continuations,
// heredocs for RUN/COPY/ADD, and per-instruction argument parsing (line-parsers.ts).

import {
  type Node,
  newNode,
  type ParseOptions,
  type ParseResult,
  type ParserDirectives,
  type ParseWarning,
} from "./ast.js";
import { goToLower } from "./case.js";
import { type Directive, DirectiveParser, trimLeftSpace, trimSpace } from "./directives.js";
import { DockerfileError, sourceText } from "./errors.js";
import { heredocsFromLine } from "./heredoc.js";
import { newNodeFromLine } from "./line-parsers.js";

export const DEFAULT_ESCAPE_TOKEN = "\\";

/** bufio.Scanner's limit: a line (with its newline) longer than this stops BuildKit's parser. */
const MAX_LINE_BYTES = 64 * 1024;

/** Instructions whose arguments may hold heredocs, and those that may nest such an instruction. */
const HEREDOC_INSTRUCTIONS = new Set(["add", "copy", "run"]);
const HEREDOC_COMPOUND = new Set(["onbuild"]);

function escapeRegExpChar(c: string): string {
  return /[\\^$.*+?()[\]{}|/`-]/.test(c) ? `\\${c}` : c;
}

/** The escape token's state: BuildKit's `directives` struct. */
class EscapeState {
  escapeToken = DEFAULT_ESCAPE_TOKEN;
  continuationRe!: RegExp;
  readonly parser = new DirectiveParser();
  readonly found: Directive[] = [];

  constructor() {
    this.setEscapeToken(DEFAULT_ESCAPE_TOKEN);
  }

  setEscapeToken(s: string): void {
    if (s !== "`" && s !== "\\") {
      throw new DockerfileError({ message: `invalid escape token '${s}' does not match \` or \\` });
    }
    this.escapeToken = s;
    const e = escapeRegExpChar(s);
    // The token is a continuation when it ends the line (trailing blanks allowed) and is not
    // itself escaped, or stands alone on the line.
    this.continuationRe = new RegExp(`([^${e}])${e}[ \\t]*$|^${e}[ \\t]*$`);
  }

  /** Offers a line to the directive parser; true when it was a directive. */
  possibleParserDirective(line: string): boolean {
    const d = this.parser.parseLine(line);
    if (!d) return false;
    this.found.push(d);
    if (d.name === "escape") this.setEscapeToken(d.value);
    return true;
  }
}

function isComment(line: string): boolean {
  return trimLeftSpace(line).startsWith("#");
}

/** Go's bytes.TrimRight(s, "\r\n"). */
function trimNewline(s: string): string {
  let i = s.length;
  while (i > 0) {
    const c = s.charCodeAt(i - 1);
    if (c !== 0x0a && c !== 0x0d) break;
    i--;
  }
  return i === s.length ? s : s.slice(0, i);
}

function trimLeadingTabs(s: string): string {
  let i = 0;
  while (i < s.length && s.charCodeAt(i) === 0x09) i++;
  return s.slice(i);
}

function isEmptyContinuationLine(line: string): boolean {
  return trimLeftSpace(trimNewline(line)).length === 0;
}

/** Splits into lines that keep their `\n` (BuildKit's scanLines). */
function scanLines(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (;;) {
    const i = text.indexOf("\n", start);
    if (i < 0) break;
    out.push(text.slice(start, i + 1));
    start = i + 1;
  }
  if (start < text.length) out.push(text.slice(start));
  return out;
}

function utf8Length(s: string): number {
  return s.length * 3 <= MAX_LINE_BYTES ? s.length : Buffer.byteLength(s, "utf8");
}

/** Parses a Dockerfile. Throws DockerfileError (with file name, line and the line's text). */
export function parseDockerfile(text: string, options: ParseOptions = {}): ParseResult {
  const fileName = options.fileName ?? "Dockerfile";
  let raw = scanLines(text);
  const displayLines = raw.map((l, i) => {
    let t = trimNewline(l);
    if (i === 0 && t.startsWith("\ufeff")) t = t.slice(1);
    return t;
  });

  const fail = (e: unknown, start: number, end: number): never => {
    if (e instanceof DockerfileError) {
      throw new DockerfileError({
        message: e.detail,
        fileName,
        line: e.line > 0 ? e.line : start,
        endLine: e.line > 0 ? e.endLine : end,
        lineText:
          e.lineText || sourceText(displayLines, e.line > 0 ? e.line : start, e.line > 0 ? e.endLine : end),
        suggestion: e.suggestion,
        cause: e.cause,
      });
    }
    throw e;
  };

  // A line over the scanner's limit ends the scan there; the error is reported at the end.
  let scanError: DockerfileError | undefined;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i]!.length > MAX_LINE_BYTES / 3 && utf8Length(raw[i]!) > MAX_LINE_BYTES) {
      scanError = new DockerfileError({
        message: `dockerfile line greater than max allowed size of ${MAX_LINE_BYTES - 1}`,
        fileName,
        line: i + 1,
      });
      raw = raw.slice(0, i);
      break;
    }
  }

  const d = new EscapeState();
  const root = newNode();
  root.startLine = -1;
  const warnings: ParseWarning[] = [];
  let comments: string[] = [];
  let currentLine = 0;
  let idx = 0;
  const scan = (): string | undefined => (idx < raw.length ? raw[idx++] : undefined);

  const processLine = (token: string, stripLeftWhitespace: boolean, lineNo: number): [string, boolean] => {
    token = trimNewline(token);
    if (stripLeftWhitespace) token = trimLeftSpace(token);
    let ok: boolean;
    try {
      ok = d.possibleParserDirective(token);
    } catch (e) {
      return fail(e, lineNo, lineNo);
    }
    return [isComment(token) ? "" : token, ok];
  };

  const trimContinuation = (line: string): [string, boolean] => {
    const m = d.continuationRe.exec(line);
    if (!m) return [line, true];
    return [line.slice(0, m.index) + (m[1] ?? ""), false];
  };

  for (let rawLine = scan(); rawLine !== undefined; rawLine = scan()) {
    if (currentLine === 0 && rawLine.startsWith("\ufeff")) rawLine = rawLine.slice(1);
    if (isComment(rawLine)) {
      // BuildKit drops the first byte (not necessarily the `#`) before trimming.
      const comment = trimSpace(rawLine.slice(1));
      if (comment === "") comments = [];
      else comments.push(comment);
    }
    let [bytesRead, directiveOk] = processLine(rawLine, true, currentLine + 1);
    if (directiveOk) comments = comments.slice(0, -1);
    currentLine++;

    const startLine = currentLine;
    let isEndOfLine: boolean;
    [bytesRead, isEndOfLine] = trimContinuation(bytesRead);
    if (isEndOfLine && bytesRead.length === 0) continue;
    let buf = bytesRead;

    let hasEmptyContinuationLine = false;
    while (!isEndOfLine) {
      const next = scan();
      if (next === undefined) break;
      let [cont] = processLine(next, false, currentLine + 1);
      currentLine++;
      if (isComment(next)) continue;
      if (isEmptyContinuationLine(cont)) {
        hasEmptyContinuationLine = true;
        continue;
      }
      [cont, isEndOfLine] = trimContinuation(cont);
      buf += cont;
    }

    const line = buf;
    if (hasEmptyContinuationLine) {
      warnings.push({
        rule: "NoEmptyContinuation",
        short: "Empty continuation line found in: " + line,
        detail: "Empty continuation lines will become errors in a future release",
        url: "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/",
        location: { startLine: currentLine, endLine: currentLine },
      });
    }

    let child: Node;
    try {
      child = newNodeFromLine(line, d, comments);
    } catch (e) {
      return fail(e, startLine, currentLine);
    }

    if (canContainHeredoc(child) && line.includes("<<")) {
      let heredocs: ReturnType<typeof heredocsFromLine>;
      try {
        heredocs = heredocsFromLine(line);
      } catch (e) {
        return fail(e, startLine, currentLine);
      }
      for (const heredoc of heredocs) {
        let terminated = false;
        let content = heredoc.content;
        for (let l = scan(); l !== undefined; l = scan()) {
          currentLine++;
          let possibleTerminator = trimNewline(l);
          if (heredoc.chomp) possibleTerminator = trimLeadingTabs(possibleTerminator);
          if (possibleTerminator === heredoc.name) {
            terminated = true;
            break;
          }
          content += l;
        }
        if (!terminated) {
          fail(new DockerfileError({ message: "unterminated heredoc" }), startLine, currentLine);
        }
        child.heredocs.push({ ...heredoc, content });
      }
    }

    child.startLine = startLine;
    child.endLine = currentLine;
    if (root.startLine < 0) root.startLine = startLine;
    root.endLine = currentLine;
    root.children.push(child);
    comments = [];
  }

  if (root.startLine < 0) {
    throw new DockerfileError({ message: "file with no instructions", fileName, line: 0 });
  }
  if (scanError) throw scanError;

  const directives: { -readonly [K in keyof ParserDirectives]: ParserDirectives[K] } = { lines: {} };
  const directiveLines: Record<string, number> = {};
  for (const f of d.found) {
    directives[f.name] = f.value;
    directiveLines[f.name] = f.line;
  }
  directives.lines = directiveLines;
  return {
    ast: root,
    escapeToken: d.escapeToken,
    warnings,
    directives,
    lines: displayLines,
    fileName,
  };
}

function canContainHeredoc(node: Node): boolean {
  let n = node;
  if (HEREDOC_COMPOUND.has(goToLower(n.value))) {
    if (n.next && n.next.children.length > 0) n = n.next.children[0]!;
  }
  if (!HEREDOC_INSTRUCTIONS.has(goToLower(n.value))) return false;
  return !n.attributes.json;
}
