// Per-instruction argument parsing (BuildKit's line_parsers.go and split_command.go): turns the
// text after the keyword into the node chain the AST dump shows and the instruction parser reads.
//
// Two BuildKit routines (flag extraction, HEALTHCHECK's type word) walk the line byte by byte
// rather than rune by rune; they are reproduced over UTF-8 bytes so that non-ASCII text is cut
// and classified exactly as BuildKit does.

import { goQuote } from "../shell/quote.js";
import { type Node, newNode } from "./ast.js";
import { goToLower } from "./case.js";
import { isSpaceCode, trimLeftSpace, trimSpace } from "./directives.js";
import { DockerfileError } from "./errors.js";

/** The escape token and nothing else: the state line parsing needs. */
export interface LineParserContext {
  readonly escapeToken: string;
}

export type LineParser = (
  rest: string,
  d: LineParserContext,
) => { node: Node | undefined; attrs: Record<string, boolean> | undefined };

const wsSplitRe = /[\t\v\f\r ]+/;

class LineError extends DockerfileError {}

function err(message: string): LineError {
  return new LineError({ message });
}

/**
 * BuildKit's reWhitespace split (`regexp.Split(s, n)`, n = -1 or 2). For a pattern that never
 * matches the empty string, Go's Split equals JavaScript's split (n = -1), or a cut at the first
 * match (n = 2).
 */
function splitWhitespace(s: string, n: -1 | 2): string[] {
  if (n < 0) return s.split(wsSplitRe);
  const m = wsSplitRe.exec(s);
  if (!m) return [s];
  return [s.slice(0, m.index), s.slice(m.index + m[0].length)];
}

/** Go's unicode.IsSpace applied to a byte value taken as a rune. */
function isSpaceByte(b: number): boolean {
  return b === 0x20 || (b >= 0x09 && b <= 0x0d) || b === 0x85 || b === 0xa0;
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}

/** Splits `line` into the instruction word, its `--flags` and the rest (splitCommand). */
export function splitCommand(
  line: string,
  d: LineParserContext,
): { cmd: string; flags: string[]; args: string } {
  const cmdline = splitWhitespace(trimSpace(line), 2);
  let args = "";
  let flags: string[] = [];
  if (cmdline.length === 2) {
    const r = extractBuilderFlags(cmdline[1]!, d);
    args = r.rest;
    flags = r.flags;
  }
  return { cmd: cmdline[0]!, flags, args: trimSpace(args) };
}

/** Parses leading `--flag` words; returns them and the remaining text (extractBuilderFlags). */
export function extractBuilderFlags(line: string, d: LineParserContext): { rest: string; flags: string[] } {
  const ascii = isAscii(line);
  const bytes: Uint8Array = ascii ? new Uint8Array(0) : Buffer.from(line, "utf8");
  const len = ascii ? line.length : bytes.length;
  const at = ascii ? (i: number) => line.charCodeAt(i) : (i: number) => bytes[i]!;
  const restFrom = ascii
    ? (i: number) => line.slice(i)
    : (i: number) => Buffer.from(bytes.subarray(i)).toString("utf8");
  const esc = d.escapeToken.charCodeAt(0);

  const IN_SPACES = 0;
  const IN_WORD = 1;
  const IN_QUOTE = 2;
  const words: string[] = [];
  let phase = IN_SPACES;
  let sb = "";
  let quote = 0;
  let blankOK = false;
  let ch = 0;

  for (let pos = 0; pos <= len; pos++) {
    if (pos !== len) ch = at(pos);
    if (phase === IN_SPACES) {
      if (pos === len) break;
      if (isSpaceByte(ch)) continue;
      if (ch !== 0x2d || pos + 1 === len || at(pos + 1) !== 0x2d) {
        return { rest: restFrom(pos), flags: words };
      }
      phase = IN_WORD;
    }
    if ((phase === IN_WORD || phase === IN_QUOTE) && pos === len) {
      if (sb !== "--" && (blankOK || sb.length > 0)) words.push(sb);
      break;
    }
    if (phase === IN_WORD) {
      if (isSpaceByte(ch)) {
        const word = sb;
        phase = IN_SPACES;
        if (word === "--") return { rest: restFrom(pos), flags: words };
        if (blankOK || word.length > 0) words.push(word);
        sb = "";
        blankOK = false;
        continue;
      }
      if (ch === 0x27 || ch === 0x22) {
        quote = ch;
        blankOK = true;
        phase = IN_QUOTE;
        continue;
      }
      if (ch === esc) {
        if (pos + 1 === len) continue;
        pos++;
        ch = at(pos);
      }
      sb += String.fromCharCode(ch);
      continue;
    }
    if (phase === IN_QUOTE) {
      if (ch === quote) {
        phase = IN_WORD;
        continue;
      }
      if (ch === esc) {
        if (pos + 1 === len) {
          phase = IN_WORD;
          continue;
        }
        pos++;
        ch = at(pos);
      }
      sb += String.fromCharCode(ch);
    }
  }
  return { rest: "", flags: words };
}

/** Splits into words on white space, keeping quotes and escapes (parseWords). */
export function parseWords(rest: string, d: LineParserContext): string[] {
  const IN_SPACES = 0;
  const IN_WORD = 1;
  const IN_QUOTE = 2;
  const esc = d.escapeToken.charCodeAt(0);
  const words: string[] = [];
  let phase = IN_SPACES;
  let quote = 0;
  let blankOK = false;
  let sb = "";
  const len = rest.length;
  let ch = 0;
  for (let pos = 0; pos <= len; pos++) {
    if (pos !== len) ch = rest.charCodeAt(pos);
    if (phase === IN_SPACES) {
      if (pos === len) break;
      if (isSpaceCode(ch)) continue;
      phase = IN_WORD;
    }
    if ((phase === IN_WORD || phase === IN_QUOTE) && pos === len) {
      if (blankOK || sb.length > 0) words.push(sb);
      break;
    }
    if (phase === IN_WORD) {
      if (isSpaceCode(ch)) {
        phase = IN_SPACES;
        if (blankOK || sb.length > 0) words.push(sb);
        sb = "";
        blankOK = false;
        continue;
      }
      if (ch === 0x27 || ch === 0x22) {
        quote = ch;
        blankOK = true;
        phase = IN_QUOTE;
      }
      if (ch === esc) {
        if (pos + 1 === len) continue;
        sb += String.fromCharCode(ch);
        pos++;
        ch = rest.charCodeAt(pos);
      }
      sb += String.fromCharCode(ch);
      continue;
    }
    if (phase === IN_QUOTE) {
      if (ch === quote) phase = IN_WORD;
      if (ch === esc && quote !== 0x27) {
        if (pos + 1 === len) {
          phase = IN_WORD;
          continue;
        }
        pos++;
        sb += String.fromCharCode(ch);
        ch = rest.charCodeAt(pos);
      }
      sb += String.fromCharCode(ch);
    }
  }
  return words;
}

function valueNode(value: string): Node {
  return newNode(value);
}

const parseIgnore: LineParser = () => ({ node: newNode(), attrs: undefined });

function newKeyValueNode(key: string, value: string, sep: string): Node {
  const k = valueNode(key);
  const v = valueNode(value);
  k.next = v;
  v.next = valueNode(sep);
  return k;
}

function parseNameVal(rest: string, key: string, d: LineParserContext): Node | undefined {
  const words = parseWords(rest, d);
  if (words.length === 0) return undefined;
  if (!words[0]!.includes("=")) {
    // legacy `KEY name value`
    const parts = splitWhitespace(rest, 2);
    if (parts.length < 2) throw err(`${key} must have two arguments`);
    return newKeyValueNode(parts[0]!, parts[1]!, "");
  }
  let root: Node | undefined;
  let prev: Node | undefined;
  for (const word of words) {
    const eq = word.indexOf("=");
    if (eq < 0) throw err(`Syntax error - can't find = in ${goQuote(word)}. Must be of the form: name=value`);
    const node = newKeyValueNode(word.slice(0, eq), word.slice(eq + 1), "=");
    if (!root) root = node;
    if (prev) prev.next = node;
    prev = node.next!.next!;
  }
  return root;
}

const parseEnv: LineParser = (rest, d) => ({ node: parseNameVal(rest, "ENV", d), attrs: undefined });
const parseLabel: LineParser = (rest, d) => ({ node: parseNameVal(rest, "LABEL", d), attrs: undefined });

const parseNameOrNameVal: LineParser = (rest, d) => {
  const words = parseWords(rest, d);
  if (words.length === 0) return { node: undefined, attrs: undefined };
  let root: Node | undefined;
  let prev: Node | undefined;
  for (const w of words) {
    const n = valueNode(w);
    if (!root) root = n;
    else prev!.next = n;
    prev = n;
  }
  return { node: root, attrs: undefined };
};

function stringsWhitespaceDelimited(rest: string): Node | undefined {
  if (rest === "") return undefined;
  let root: Node | undefined;
  let prev: Node | undefined;
  for (const s of splitWhitespace(rest, -1)) {
    const n = valueNode(s);
    if (!root) root = n;
    else prev!.next = n;
    prev = n;
  }
  return root;
}

const parseStringsWhitespaceDelimited: LineParser = (rest) => ({
  node: stringsWhitespaceDelimited(rest),
  attrs: undefined,
});

const parseString: LineParser = (rest) => ({
  node: rest === "" ? undefined : valueNode(rest),
  attrs: undefined,
});

const NOT_JSON_ARRAY = "not a JSON array";
const NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only";

/** parseJSON: the arguments as a JSON array of strings, or a reason why not. */
function parseJSON(rest: string): { node: Node | undefined; error?: string } {
  rest = trimLeftSpace(rest);
  if (!rest.startsWith("[")) return { node: undefined, error: NOT_JSON_ARRAY };
  let parsed: unknown;
  try {
    parsed = JSON.parse(rest);
  } catch (e) {
    return { node: undefined, error: (e as Error).message };
  }
  if (!Array.isArray(parsed)) return { node: undefined, error: NOT_JSON_ARRAY };
  // Go fails to decode numbers beyond float64 (an ordinary decode error, not "strings only").
  if (parsed.some((v) => typeof v === "number" && !Number.isFinite(v))) {
    return { node: undefined, error: "number out of range" };
  }
  let top: Node | undefined;
  let prev: Node | undefined;
  for (const v of parsed) {
    if (typeof v !== "string") return { node: undefined, error: NOT_STRING_ARRAY };
    // Go decodes lone surrogate escapes to U+FFFD.
    const n = valueNode(toWellFormed(v));
    if (!top) top = n;
    else prev!.next = n;
    prev = n;
  }
  return { node: top };
}

function toWellFormed(s: string): string {
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

const JSON_ATTRS = (): Record<string, boolean> => ({ json: true });

const parseMaybeJSON: LineParser = (rest) => {
  if (rest === "") return { node: undefined, attrs: undefined };
  const r = parseJSON(rest);
  if (r.error === undefined) return { node: r.node, attrs: JSON_ATTRS() };
  if (r.error === NOT_STRING_ARRAY) throw err(NOT_STRING_ARRAY);
  return { node: valueNode(rest), attrs: undefined };
};

const parseMaybeJSONToList: LineParser = (rest) => {
  const r = parseJSON(rest);
  if (r.error === undefined) return { node: r.node, attrs: JSON_ATTRS() };
  if (r.error === NOT_STRING_ARRAY) throw err(NOT_STRING_ARRAY);
  return { node: stringsWhitespaceDelimited(rest), attrs: undefined };
};

/** HEALTHCHECK: a type word (CMD, NONE, …), then parseMaybeJSON; scans bytes as BuildKit. */
const parseHealthConfig: LineParser = (rest, d) => {
  const ascii = isAscii(rest);
  const bytes = ascii ? undefined : Buffer.from(rest, "utf8");
  const len = bytes ? bytes.length : rest.length;
  const at = bytes ? (i: number) => bytes[i]! : (i: number) => rest.charCodeAt(i);
  let sep = 0;
  while (sep < len && !isSpaceByte(at(sep))) sep++;
  let next = sep;
  while (next < len && isSpaceByte(at(next))) next++;
  if (sep === 0) return { node: undefined, attrs: undefined };
  const typ = bytes ? Buffer.from(bytes.subarray(0, sep)).toString("utf8") : rest.slice(0, sep);
  const cmdText = bytes ? Buffer.from(bytes.subarray(next)).toString("utf8") : rest.slice(next);
  const r = parseMaybeJSON(cmdText, d);
  const node = valueNode(typ);
  node.next = r.node;
  return { node, attrs: r.attrs };
};

/** ONBUILD: the rest is an instruction of its own, nested as the only child of the argument. */
const parseSubCommand: LineParser = (rest, d) => {
  if (rest === "") return { node: undefined, attrs: undefined };
  const child = newNodeFromLine(rest, d, []);
  const wrapper = newNode();
  wrapper.children = [child];
  return { node: wrapper, attrs: undefined };
};

const dispatch: Readonly<Record<string, LineParser>> = {
  add: parseMaybeJSONToList,
  arg: parseNameOrNameVal,
  cmd: parseMaybeJSON,
  copy: parseMaybeJSONToList,
  entrypoint: parseMaybeJSON,
  env: parseEnv,
  expose: parseStringsWhitespaceDelimited,
  from: parseStringsWhitespaceDelimited,
  healthcheck: parseHealthConfig,
  label: parseLabel,
  maintainer: parseString,
  onbuild: parseSubCommand,
  run: parseMaybeJSON,
  shell: parseMaybeJSON,
  stopsignal: parseString,
  user: parseString,
  volume: parseMaybeJSONToList,
  workdir: parseString,
};

/** One logical line → instruction node (newNodeFromLine). Unknown instructions get an empty argument. */
export function newNodeFromLine(line: string, d: LineParserContext, comments: string[]): Node {
  const { cmd, flags, args } = splitCommand(line, d);
  const lower = goToLower(cmd);
  const fn = Object.hasOwn(dispatch, lower) ? dispatch[lower]! : parseIgnore;
  const { node: next, attrs } = fn(args, d);
  const node = newNode(cmd);
  node.original = line;
  node.flags = flags;
  node.next = next;
  node.attributes = attrs ?? {};
  node.prevComment = comments;
  return node;
}
