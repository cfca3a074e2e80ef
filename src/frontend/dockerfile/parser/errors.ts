// The one error type of the Dockerfile front end: what is wrong, where (file:line and the line's
// text), and what to do about it. Parser, lexer and instruction errors all end up as this.
import { goToLower, goToUpper } from "./case.js";

export interface DockerfileErrorInit {
  readonly message: string;
  /** File name as shown to the user; default `Dockerfile`. */
  readonly fileName?: string;
  /** 1-based line where the problem is (0 when it has no line, e.g. an empty file). */
  readonly line?: number;
  /** Last line of the instruction (defaults to `line`). */
  readonly endLine?: number;
  /** The text of the line(s) concerned. */
  readonly lineText?: string;
  /** What to do about it, e.g. `did you mean COPY?`. */
  readonly suggestion?: string;
  /** An underlying cause (a lexer error, say). */
  readonly cause?: unknown;
}

export class DockerfileError extends Error {
  override readonly name = "DockerfileError";
  readonly fileName: string;
  readonly line: number;
  readonly endLine: number;
  lineText: string;
  /** The bare description of what is wrong (without file/line). */
  readonly detail: string;
  readonly suggestion: string | undefined;

  constructor(init: DockerfileErrorInit) {
    const fileName = init.fileName ?? "Dockerfile";
    const line = init.line ?? 0;
    super(
      (line > 0 ? `${fileName}:${line}: ` : "") +
        init.message +
        (init.suggestion ? ` (${init.suggestion})` : ""),
      init.cause === undefined ? undefined : { cause: init.cause },
    );
    this.fileName = fileName;
    this.line = line;
    this.endLine = init.endLine ?? line;
    this.lineText = init.lineText ?? "";
    this.detail = init.message;
    this.suggestion = init.suggestion;
  }

  /**
   * Renders the error for a terminal:
   * ```
   * Dockerfile:3
   * --------------------
   *    3 | COPY --form=build /a /b
   * --------------------
   * unknown flag: --form
   * did you mean --from?
   * ```
   */
  format(): string {
    const out: string[] = [];
    out.push(this.line > 0 ? `${this.fileName}:${this.line}` : this.fileName);
    if (this.lineText !== "") {
      out.push("--------------------");
      const texts = this.lineText.split("\n");
      const width = String(this.line + texts.length - 1).length;
      texts.forEach((t, i) => {
        out.push(` ${String(this.line + i).padStart(Math.max(width, 4))} | ${t}`);
      });
      out.push("--------------------");
    }
    out.push(this.detail);
    if (this.suggestion) out.push(this.suggestion);
    return out.join("\n");
  }

  /** A copy with file/line context filled in where it is missing. */
  withContext(ctx: {
    fileName?: string;
    line?: number;
    endLine?: number;
    lines?: readonly string[];
  }): DockerfileError {
    const line = this.line > 0 ? this.line : (ctx.line ?? 0);
    const endLine = this.line > 0 ? this.endLine : (ctx.endLine ?? line);
    const fileName = ctx.fileName ?? this.fileName;
    let lineText = this.lineText;
    if (lineText === "" && ctx.lines && line > 0) lineText = sourceText(ctx.lines, line, endLine);
    if (line === this.line && fileName === this.fileName && lineText === this.lineText) return this;
    return new DockerfileError({
      message: this.detail,
      fileName,
      line,
      endLine,
      lineText,
      suggestion: this.suggestion,
      cause: this.cause,
    });
  }
}

/** Lines start..end (1-based, inclusive) of a file, joined with newlines. */
export function sourceText(lines: readonly string[], start: number, end: number): string {
  if (start < 1) return "";
  const last = Math.min(Math.max(end, start), lines.length);
  return lines.slice(start - 1, last).join("\n");
}

/**
 * BuildKit's suggest.Search: the candidate closest to `value` by edit distance, if the distance
 * is under 3 and `value` is not itself a candidate. Case-insensitive search answers in the case
 * of `value` (all lower or all upper). Ties go to the earlier candidate.
 */
export function suggestClosest(
  value: string,
  candidates: readonly string[],
  caseSensitive: boolean,
): string | undefined {
  const v = caseSensitive ? value : goToLower(value);
  let match = "";
  let minDist = 3;
  for (const c of candidates) {
    const opt = caseSensitive ? c : goToLower(c);
    if (opt === v) return undefined;
    const dist = levenshtein(v, opt);
    if (dist < minDist) {
      match = caseSensitive ? opt : matchCase(opt, value);
      minDist = dist;
    }
  }
  return match === "" ? undefined : match;
}

function matchCase(val: string, orig: string): string {
  if (orig === goToLower(orig)) return goToLower(val);
  if (orig === goToUpper(orig)) return goToUpper(val);
  return val;
}

/** Edit distance over code points (insert, delete, substitute: cost 1). */
export function levenshtein(x: string, y: string): number {
  const a = Array.from(x);
  const b = Array.from(y);
  const m = a.length;
  const n = b.length;
  if (m === 0) return n;
  if (n === 0) return m;
  let prev = new Array<number>(n + 1);
  let cur = new Array<number>(n + 1);
  for (let j = 0; j <= n; j++) prev[j] = j;
  for (let i = 1; i <= m; i++) {
    cur[0] = i;
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[n]!;
}
