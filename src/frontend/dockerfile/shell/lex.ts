// The shell-word lexer (BuildKit's frontend/dockerfile/shell Lex): variable expansion, quote and
// escape processing, and word splitting, with the same quirks as BuildKit so that a Dockerfile
// means the same thing to Kiln as to BuildKit. It also reports which variables a word used and
// which it found unset (the UndefinedVar check needs both).
import { DockerfileError } from "../parser/errors.js";
import { goQuote } from "./quote.js";

/** Where variable values come from. */
export interface EnvGetter {
  get(key: string): string | undefined;
  keys(): string[];
}

/** The lexer's result with everything it found out. */
export interface ProcessWordResult {
  /** The word expanded, quotes and escapes processed, not split. */
  readonly result: string;
  /** The word expanded and split into words. */
  readonly words: string[];
  /** Variables referenced that were set. */
  readonly matched: Set<string>;
  /** Variables referenced that were not set. */
  readonly unmatched: Set<string>;
}

/** An expansion failure (bad substitution, unterminated quote, `${x:?msg}` …). */
export class ShellLexError extends DockerfileError {}

/** Env keys are case-sensitive on Unix (BuildKit's NormalizeEnvKey is the identity there). */
export function normalizeEnvKey(key: string): string {
  return key;
}

/** An EnvGetter over `KEY=VALUE` strings; later entries win. */
export function envsFromSlice(env: readonly string[]): EnvGetter {
  const map = new Map<string, string>();
  const keys: string[] = [];
  for (const e of env) {
    const i = e.indexOf("=");
    const k = i < 0 ? e : e.slice(0, i);
    const v = i < 0 ? "" : e.slice(i + 1);
    keys.push(k);
    map.set(normalizeEnvKey(k), v);
  }
  return { get: (k) => map.get(normalizeEnvKey(k)), keys: () => keys };
}

/** An EnvGetter over a record or map. */
export function envsFromRecord(
  env: Readonly<Record<string, string>> | ReadonlyMap<string, string>,
): EnvGetter {
  const map = env instanceof Map ? (env as ReadonlyMap<string, string>) : new Map(Object.entries(env));
  return { get: (k) => map.get(k), keys: () => [...map.keys()] };
}

/** An environment with nothing set. */
export const emptyEnv: EnvGetter = { get: () => undefined, keys: () => [] };

const EOF = -1;

/** Go's unicode.IsSpace. */
export function isGoSpace(cp: number): boolean {
  switch (cp) {
    case 0x09:
    case 0x0a:
    case 0x0b:
    case 0x0c:
    case 0x0d:
    case 0x20:
    case 0x85:
    case 0xa0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202f:
    case 0x205f:
    case 0x3000:
      return true;
  }
  return cp >= 0x2000 && cp <= 0x200a;
}

const letterRe = /\p{L}/u;
const digitRe = /\p{Nd}/u;
function isLetter(cp: number): boolean {
  if (cp < 0x80) return (cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a);
  return letterRe.test(String.fromCodePoint(cp));
}
function isDigit(cp: number): boolean {
  if (cp < 0x80) return cp >= 0x30 && cp <= 0x39;
  return digitRe.test(String.fromCodePoint(cp));
}

function isSpecialParam(cp: number): boolean {
  // @ * # ? - $ ! 0
  return (
    cp === 0x40 ||
    cp === 0x2a ||
    cp === 0x23 ||
    cp === 0x3f ||
    cp === 0x2d ||
    cp === 0x24 ||
    cp === 0x21 ||
    cp === 0x30
  );
}

function isHeredocSpace(cp: number): boolean {
  return cp === 0x09 || cp === 0x0d || cp === 0x20;
}

/** A rune reader over a string (Go's text/scanner Next/Peek). */
class RuneScanner {
  private runes: number[] = [];
  private pos = 0;

  init(src: string): void {
    const runes: number[] = [];
    for (let i = 0; i < src.length; ) {
      const cp = src.codePointAt(i)!;
      runes.push(cp);
      i += cp > 0xffff ? 2 : 1;
    }
    // text/scanner skips a byte-order mark at the very start.
    this.pos = runes[0] === 0xfeff ? 1 : 0;
    this.runes = runes;
  }

  peek(): number {
    return this.pos < this.runes.length ? this.runes[this.pos]! : EOF;
  }

  next(): number {
    return this.pos < this.runes.length ? this.runes[this.pos++]! : EOF;
  }
}

/** Word collector; `buf` is shared between nested calls, exactly as BuildKit's (see processStopOn). */
class Words {
  readonly words: string[] = [];
  inWord = false;
  constructor(private readonly state: { buf: string }) {}

  addChar(cp: number): void {
    if (isGoSpace(cp) && this.inWord) {
      if (this.state.buf.length !== 0) {
        this.words.push(this.state.buf);
        this.state.buf = "";
        this.inWord = false;
      }
    } else if (!isGoSpace(cp)) {
      this.addRawChar(cp);
    }
  }

  addRawChar(cp: number): void {
    this.state.buf += String.fromCodePoint(cp);
    this.inWord = true;
  }

  addString(s: string): void {
    for (const ch of s) this.addChar(ch.codePointAt(0)!);
  }

  addRawString(s: string): void {
    this.state.buf += s;
    this.inWord = true;
  }

  getWords(): string[] {
    if (this.state.buf.length > 0) {
      this.words.push(this.state.buf);
      this.state.buf = "";
      this.inWord = false;
    }
    return this.words;
  }
}

class InnerError extends Error {}

/**
 * Performs shell word expansion and splitting like BuildKit's shell.Lex. Not safe for concurrent
 * (re-entrant) use of one instance; create one per caller.
 */
export class ShellLex {
  /** Keep quote characters in the output. */
  rawQuotes = false;
  /** Keep escape characters in the output. */
  rawEscapes = false;
  /** Treat quotes as ordinary characters. */
  skipProcessQuotes = false;
  /** Leave references to unset variables as written (`$x`, `${x:-y}`). */
  skipUnsetEnv = false;

  readonly escapeToken: string;
  private readonly escapeCp: number;

  // per-call state
  private scanner = new RuneScanner();
  private env: EnvGetter = emptyEnv;
  private capture = false;
  private curRawEscapes = false;
  private wordsState = { buf: "" };
  private matches = new Set<string>();
  private nonmatches = new Set<string>();

  constructor(escapeToken = "\\") {
    if (escapeToken.length !== 1) throw new Error(`invalid escape token ${JSON.stringify(escapeToken)}`);
    this.escapeToken = escapeToken;
    this.escapeCp = escapeToken.codePointAt(0)!;
  }

  /** Expands `word` as one word (no splitting). Throws ShellLexError. */
  processWord(word: string, env: EnvGetter): string {
    return this.process(word, env, true).result;
  }

  /** Expands `word` and reports the variables it used and the unset ones. Throws ShellLexError. */
  processWordWithMatches(word: string, env: EnvGetter): ProcessWordResult {
    return this.process(word, env, true);
  }

  /**
   * Expands `word` and splits it into words on unquoted whitespace (after expansion, as BuildKit
   * does: an unquoted variable's value is split too). Throws ShellLexError.
   */
  processWords(word: string, env: EnvGetter): string[] {
    return this.process(word, env, false).words;
  }

  private process(word: string, env: EnvGetter, capture: boolean): ProcessWordResult {
    this.env = env;
    this.capture = capture;
    this.curRawEscapes = this.rawEscapes;
    this.wordsState = { buf: "" };
    this.matches = new Set();
    this.nonmatches = new Set();
    this.scanner.init(word);
    try {
      const [result, words] = this.processStopOn(EOF, this.rawEscapes);
      return { result, words, matched: this.matches, unmatched: this.nonmatches };
    } catch (e) {
      if (e instanceof InnerError) {
        throw new ShellLexError({ message: `failed to process ${goQuote(word)}: ${e.message}` });
      }
      throw e;
    }
  }

  /** Processes up to `stopChar` (consumed) or the end; returns the text and the words. */
  private processStopOn(stopChar: number, rawEscapes: boolean): [string, string[]] {
    let result = "";
    // BuildKit shares one words buffer across nested calls (it resets it here); nested
    // expansions like ${x:-y} therefore drop a partial word collected before them. Kept as is.
    this.wordsState.buf = "";
    const words = new Words(this.wordsState);
    const saved = this.curRawEscapes;
    this.curRawEscapes = rawEscapes;
    try {
      const sc = this.scanner;
      for (;;) {
        const ch = sc.peek();
        if (ch === EOF) break;
        if (stopChar !== EOF && ch === stopChar) {
          sc.next();
          return [result, words.getWords()];
        }
        if (ch === 0x24 /* $ */) {
          const tmp = this.processDollar();
          result += tmp;
          words.addString(tmp);
          continue;
        }
        if (ch === 0x3c /* < */) {
          const tmp = this.processPossibleHeredoc();
          result += tmp;
          words.addRawString(tmp);
          continue;
        }
        if (!this.skipProcessQuotes && (ch === 0x27 || ch === 0x22)) {
          const tmp = ch === 0x27 ? this.processSingleQuote() : this.processDoubleQuote();
          result += tmp;
          words.addRawString(tmp);
          continue;
        }
        let c = sc.next();
        if (c === this.escapeCp) {
          if (this.curRawEscapes) {
            words.addRawChar(c);
            result += String.fromCodePoint(c);
          }
          c = sc.next();
          if (c === EOF) break;
          words.addRawChar(c);
        } else {
          words.addChar(c);
        }
        result += String.fromCodePoint(c);
      }
      if (stopChar !== EOF) {
        throw new InnerError(
          `unexpected end of statement while looking for matching ${String.fromCodePoint(stopChar)}`,
        );
      }
      return [result, words.getWords()];
    } finally {
      this.curRawEscapes = saved;
    }
  }

  private processSingleQuote(): string {
    const sc = this.scanner;
    let result = "";
    let ch = sc.next();
    if (this.rawQuotes) result += String.fromCodePoint(ch);
    for (;;) {
      ch = sc.next();
      if (ch === EOF)
        throw new InnerError("unexpected end of statement while looking for matching single-quote");
      if (ch === 0x27) {
        if (this.rawQuotes) result += "'";
        return result;
      }
      result += String.fromCodePoint(ch);
    }
  }

  private processDoubleQuote(): string {
    const sc = this.scanner;
    let result = "";
    const first = sc.next();
    if (this.rawQuotes) result += String.fromCodePoint(first);
    for (;;) {
      const p = sc.peek();
      if (p === EOF)
        throw new InnerError("unexpected end of statement while looking for matching double-quote");
      if (p === 0x22) {
        sc.next();
        if (this.rawQuotes) result += '"';
        return result;
      }
      if (p === 0x24) {
        result += this.processDollar();
        continue;
      }
      let ch = sc.next();
      if (ch === this.escapeCp) {
        if (this.curRawEscapes) result += String.fromCodePoint(ch);
        const q = sc.peek();
        if (q === EOF) continue; // ignore the escape at the end of the word
        if (q === 0x22 || q === 0x24 || q === this.escapeCp) ch = sc.next();
      }
      result += String.fromCodePoint(ch);
    }
  }

  private processDollar(): string {
    const sc = this.scanner;
    sc.next();
    if (sc.peek() !== 0x7b /* { */) {
      const name = this.processName();
      if (name === "") return "$";
      const value = this.getEnv(name);
      if (value === undefined && this.skipUnsetEnv) return "$" + name;
      return value ?? "";
    }
    sc.next();
    const p = sc.peek();
    if (p === EOF) throw new InnerError("syntax error: missing '}'");
    if (p === 0x7b || p === 0x7d || p === 0x3a) throw new InnerError("syntax error: bad substitution");
    const name = this.processName();
    let ch = sc.next();
    let chs = ch === EOF ? "\ufffd" : String.fromCodePoint(ch);
    let nullIsUnset = false;

    switch (ch) {
      case 0x7d /* } */:
        {
          const value = this.getEnv(name);
          if (value === undefined && this.skipUnsetEnv) return `\${${name}}`;
          return value ?? "";
        }
      case 0x3a /* : */:
      case 0x2b /* + */:
      case 0x2d /* - */:
      case 0x3f /* ? */:
      case 0x23 /* # */:
      case 0x25 /* % */:
        {
          if (ch === 0x3a) {
            nullIsUnset = true;
            ch = sc.next();
            chs += ch === EOF ? "\ufffd" : String.fromCodePoint(ch);
          }
          const rawEscapes = ch === 0x23 || ch === 0x25;
          if (nullIsUnset && rawEscapes)
            throw new InnerError(`unsupported modifier (${chs}) in substitution`);
          let word: string;
          try {
            word = this.processStopOn(0x7d, rawEscapes)[0];
          } catch (e) {
            if (e instanceof InnerError && sc.peek() === EOF)
              throw new InnerError("syntax error: missing '}'");
            throw e;
          }
          const value = this.getEnv(name);
          const set = value !== undefined;
          if (this.skipUnsetEnv && !set) return `\${${name}${chs}${word}}`;
          const v = value ?? "";
          switch (ch) {
            case 0x2d:
              if (!set || (nullIsUnset && v === "")) return word;
              return v;
            case 0x2b:
              if (!set || (nullIsUnset && v === "")) return "";
              return word;
            case 0x3f:
              if (!set) throw new InnerError(`${name}: ${word !== "" ? word : "is not allowed to be unset"}`);
              if (nullIsUnset && v === "") {
                throw new InnerError(`${name}: ${word !== "" ? word : "is not allowed to be empty"}`);
              }
              return v;
            case 0x25:
            case 0x23: {
              let greedy = false;
              if (word.length > 0 && word.codePointAt(0) === ch) {
                greedy = true;
                word = word.slice(1);
              }
              return ch === 0x25 ? trimSuffix(word, v, greedy) : trimPrefix(word, v, greedy);
            }
            default:
              throw new InnerError(`unsupported modifier (${chs}) in substitution`);
          }
        }
      case 0x2f /* / */:
        {
          const replaceAll = sc.peek() === 0x2f;
          if (replaceAll) sc.next();
          let pattern: string;
          try {
            pattern = this.processStopOn(0x2f, true)[0];
          } catch (e) {
            if (e instanceof InnerError && sc.peek() === EOF)
              // biome-ignore lint/suspicious/noTemplateCurlyInString: BuildKit's message names the ${} syntax
              throw new InnerError("syntax error: missing '/' in ${}");
            throw e;
          }
          let replacement: string;
          try {
            replacement = this.processStopOn(0x7d, true)[0];
          } catch (e) {
            if (e instanceof InnerError && sc.peek() === EOF)
              throw new InnerError("syntax error: missing '}'");
            throw e;
          }
          const value = this.getEnv(name);
          if (this.skipUnsetEnv && value === undefined) return `\${${name}/${pattern}/${replacement}}`;
          const re = compilePattern(pattern, true, false);
          const v = value ?? "";
          if (replaceAll) return goReplaceAll(re, v, replacement);
          re.lastIndex = 0;
          const m = re.exec(v);
          if (m) return v.slice(0, m.index) + replacement + v.slice(m.index + m[0].length);
          return v;
        }
      default:
        throw new InnerError(`unsupported modifier (${chs}) in substitution`);
    }
  }

  private processName(): string {
    const sc = this.scanner;
    let name = "";
    for (;;) {
      const ch = sc.peek();
      if (ch === EOF) break;
      if (name.length === 0 && isDigit(ch)) {
        while (sc.peek() !== EOF && isDigit(sc.peek())) name += String.fromCodePoint(sc.next());
        return name;
      }
      if (name.length === 0 && isSpecialParam(ch)) {
        return String.fromCodePoint(sc.next());
      }
      if (!isLetter(ch) && !isDigit(ch) && ch !== 0x5f) break;
      name += String.fromCodePoint(sc.next());
    }
    return name;
  }

  private processPossibleHeredoc(): string {
    const sc = this.scanner;
    sc.next();
    if (sc.peek() !== 0x3c) return "<";
    sc.next();
    let space = "";
    while (isHeredocSpace(sc.peek())) space += String.fromCodePoint(sc.next());
    return "<<" + space;
  }

  private getEnv(name: string): string | undefined {
    const v = this.env.get(name);
    if (this.capture) {
      if (v !== undefined) this.matches.add(name);
      else this.nonmatches.add(name);
    }
    return v;
  }
}

/**
 * A shell wildcard pattern (`?` one char, `*` any string; no bracket expressions) as a regular
 * expression, as BuildKit's convertShellPatternToRegex. `.` is written as `[^\n]` to keep Go's
 * meaning (JavaScript's `.` also excludes \r, U+2028 and U+2029).
 */
export function convertShellPatternToRegex(pattern: string, greedy: boolean, anchored: boolean): string {
  const runes = Array.from(pattern);
  let out = anchored ? "^" : "";
  const star = greedy ? "[^\\n]*" : "[^\\n]*?";
  for (let i = 0; i < runes.length; i++) {
    let tok = runes[i]!;
    switch (tok) {
      case "*":
        out += star;
        continue;
      case "?":
        out += "[^\\n]";
        continue;
      case "\\": {
        const peek = runes[i + 1];
        if (peek === "}" || peek === "/") continue;
        out += "\\";
        i++;
        const next = runes[i];
        if (next !== "*" && next !== "?" && next !== "\\") {
          throw new InnerError(
            `invalid pattern (${pattern}) in substitution: invalid escape '\\${next ?? "\ufffd"}'`,
          );
        }
        tok = next;
        break;
      }
      case "[":
      case "]":
      case "{":
      case "}":
      case ".":
      case "+":
      case "(":
      case ")":
      case "|":
      case "^":
      case "$":
        out += "\\";
        break;
    }
    out += tok;
  }
  return out;
}

function compilePattern(pattern: string, greedy: boolean, anchored: boolean): RegExp {
  return new RegExp(convertShellPatternToRegex(pattern, greedy, anchored), "gu");
}

function trimPrefix(pattern: string, value: string, greedy: boolean): string {
  const re = compilePattern(pattern, greedy, true);
  re.lastIndex = 0;
  const m = re.exec(value);
  if (m) return value.slice(m.index + m[0].length);
  return value;
}

/** Reverses a pattern, keeping escapes in front of what they escape: `a\*c` → `c\*a`. */
export function reversePattern(pattern: string): string {
  const runes = Array.from(pattern);
  const out = new Array<string>(runes.length);
  const last = runes.length - 1;
  for (let i = 0; i <= last; ) {
    const tok = runes[i]!;
    const o = last - i;
    if (tok === "\\" && i !== last) {
      out[o - 1] = tok;
      out[o] = runes[i + 1]!;
      i += 2;
    } else {
      out[o] = tok;
      i++;
    }
  }
  return out.join("");
}

function reverseString(s: string): string {
  return Array.from(s).reverse().join("");
}

function trimSuffix(pattern: string, value: string, greedy: boolean): string {
  // A regexp cannot find the shortest rightmost match, so match the reversed pattern at the
  // start of the reversed value.
  return reverseString(trimPrefix(reversePattern(pattern), reverseString(value), greedy));
}

/**
 * Go's Regexp.ReplaceAllString: non-overlapping matches, no empty match right after a match,
 * and `$name`/`${name}` in the replacement expanded (our patterns have no groups, so only `$0`
 * stands for anything; `$$` is a dollar).
 */
function goReplaceAll(re: RegExp, src: string, repl: string): string {
  let out = "";
  let lastMatchEnd = 0;
  let searchPos = 0;
  while (searchPos <= src.length) {
    re.lastIndex = searchPos;
    const m = re.exec(src);
    if (!m) break;
    const start = m.index;
    const end = start + m[0].length;
    out += src.slice(lastMatchEnd, start);
    if (end > lastMatchEnd || start === 0) out += goExpand(repl, m[0]);
    lastMatchEnd = end;
    const cp = src.codePointAt(searchPos);
    const width = cp === undefined ? 0 : cp > 0xffff ? 2 : 1;
    if (searchPos + width > end) searchPos += width;
    else if (searchPos + 1 > end) searchPos++;
    else searchPos = end;
  }
  return out + src.slice(lastMatchEnd);
}

function goExpand(template: string, match0: string): string {
  if (!template.includes("$")) return template;
  let out = "";
  let i = 0;
  while (i < template.length) {
    const j = template.indexOf("$", i);
    if (j < 0) break;
    out += template.slice(i, j);
    i = j + 1;
    if (template[i] === "$") {
      out += "$";
      i++;
      continue;
    }
    // Go's regexp extract: `name` or `{name}`, name = letters, digits, underscores.
    const brace = template[i] === "{";
    const m = /^[\p{L}\p{Nd}_]+/u.exec(template.slice(brace ? i + 1 : i));
    if (!m || (brace && template[i + 1 + m[0].length] !== "}")) {
      out += "$"; // malformed: the dollar is kept literally
      continue;
    }
    i += m[0].length + (brace ? 2 : 0);
    if (m[0] === "0") out += match0; // no other group exists in our patterns
  }
  return out + template.slice(i);
}
