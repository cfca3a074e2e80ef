// Parser directives (`# syntax=`, `# escape=`, `# check=`): recognised only in the comment lines
// at the very top of the file, each at most once, as BuildKit's DirectiveParser.
import { DockerfileError } from "./errors.js";

export const DIRECTIVE_KEYS = ["syntax", "escape", "check"] as const;
export type DirectiveKey = (typeof DIRECTIVE_KEYS)[number];

export interface Directive {
  readonly name: DirectiveKey;
  readonly value: string;
  /** 1-based line. */
  readonly line: number;
}

// Go's \s is [\t\n\f\r ] and `.` excludes only \n.
const directiveRe = /^([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*([^\n]+?)[\t\n\f\r ]*$/;

/** Go's unicode.IsSpace over a string: trims leading Unicode white space. */
export function trimLeftSpace(s: string): string {
  let i = 0;
  while (i < s.length && isSpaceCode(s.charCodeAt(i))) i++;
  return i === 0 ? s : s.slice(i);
}

export function trimRightSpace(s: string): string {
  let i = s.length;
  while (i > 0 && isSpaceCode(s.charCodeAt(i - 1))) i--;
  return i === s.length ? s : s.slice(0, i);
}

/** Go's strings.TrimSpace. */
export function trimSpace(s: string): string {
  return trimRightSpace(trimLeftSpace(s));
}

/** Go's unicode.IsSpace for a UTF-16 code unit (every space is in the BMP). */
export function isSpaceCode(c: number): boolean {
  if (c <= 0x20) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  if (c < 0x85) return false;
  return (
    c === 0x85 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  );
}

/** Reads directives line by line until the first line that is not one. */
export class DirectiveParser {
  private line: number;
  private done = false;
  private readonly seen = new Set<string>();

  /** `startLine`: lines already consumed before the first offered one (a `#!` line). */
  constructor(
    private readonly comment = "#",
    startLine = 0,
  ) {
    this.line = startLine;
  }

  /** True once a non-directive line was seen: no later line can be a directive. */
  get finished(): boolean {
    return this.done;
  }

  /** Offers the next line (without its line ending); returns the directive it holds, if any. */
  parseLine(text: string): Directive | undefined {
    this.line++;
    if (this.done) return undefined;
    if (!text.startsWith(this.comment)) {
      this.done = true;
      return undefined;
    }
    const rest = trimLeftSpace(text.slice(this.comment.length));
    const m = directiveRe.exec(rest);
    if (!m) {
      this.done = true;
      return undefined;
    }
    const k = m[1]!.toLowerCase();
    if (!(DIRECTIVE_KEYS as readonly string[]).includes(k)) {
      this.done = true;
      return undefined;
    }
    if (this.seen.has(k)) {
      throw new DockerfileError({ message: `only one ${k} parser directive can be used`, line: this.line });
    }
    this.seen.add(k);
    return { name: k as DirectiveKey, value: m[2]!, line: this.line };
  }
}

/**
 * The value of a directive in a Dockerfile's header (BuildKit's ParseDirective / DetectSyntax):
 * skips a BOM and a `#!` line; with `anyFormat`, also `// key=` lines and a JSON object.
 */
export function detectDirective(
  key: DirectiveKey,
  text: string,
  anyFormat = false,
): { value: string; fullValue: string; line: number } | undefined {
  let dt = text.startsWith("\ufeff") ? text.slice(1) : text;
  let startLine = 0;
  const nl = dt.indexOf("\n");
  const first = nl < 0 ? dt : dt.slice(0, nl);
  if (first.startsWith("#!")) {
    dt = nl < 0 ? "" : dt.slice(nl + 1);
    startLine = 1;
  }
  const fromParser = (comment: string) => {
    const p = new DirectiveParser(comment, startLine);
    const lines = dt.split("\n");
    for (const l of lines) {
      let d: Directive | undefined;
      try {
        d = p.parseLine(l.replace(/\r$/, ""));
      } catch {
        return undefined;
      }
      if (d === undefined) {
        if (p.finished) break;
        continue;
      }
      if (d.name === key) {
        const sp = d.value.indexOf(" ");
        return { value: sp < 0 ? d.value : d.value.slice(0, sp), fullValue: d.value, line: d.line };
      }
    }
    return undefined;
  };
  const r = fromParser("#");
  if (r || !anyFormat) return r;
  const r2 = fromParser("//");
  if (r2) return r2;
  try {
    const obj = JSON.parse(dt) as unknown;
    if (obj && typeof obj === "object" && !Array.isArray(obj)) {
      const v = (obj as Record<string, unknown>)[key];
      if (typeof v === "string") return { value: v, fullValue: v, line: startLine };
    }
  } catch {
    // not JSON
  }
  return undefined;
}
