// Heredoc words (`<<EOF`, `<<-"EOF"`, `3<<EOF`) as BuildKit recognises them in RUN/COPY/ADD lines.
import { emptyEnv, ShellLex } from "../shell/lex.js";
import type { Heredoc } from "./ast.js";
import { DockerfileError } from "./errors.js";

// Go: ^(\d*)<<(-?)\s*([^<]*)$ with \d = [0-9] and \s = [\t\n\f\r ].
const heredocRe = /^([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)$/;

/** Parses one word as a heredoc marker; undefined when it is not one. Throws on lexer errors. */
export function parseHeredoc(src: string): Heredoc | undefined {
  const m = heredocRe.exec(src);
  if (!m) return undefined;
  const fd = m[1] === "" ? 0 : Number.parseInt(m[1]!, 10);
  const chomp = m[2] === "-";
  const rest = m[3]!;
  if (rest.length === 0) return undefined;

  const lex = new ShellLex("\\");
  lex.skipUnsetEnv = true;
  // Lex the word with and without quotes: if they differ, part of it was quoted, and the
  // content is not to be expanded.
  lex.rawQuotes = false;
  const words = lex.processWords(rest, emptyEnv);
  if (words.length !== 1) return undefined;
  lex.rawQuotes = true;
  const wordsRaw = lex.processWords(rest, emptyEnv);
  if (wordsRaw.length !== words.length) {
    throw new DockerfileError({
      message: `internal lexing of heredoc produced inconsistent results: ${rest}`,
    });
  }
  const word = words[0]!;
  const wordRaw = wordsRaw[0]!;
  const expand = countQuotes(word) === countQuotes(wordRaw);
  return {
    name: word,
    // Go parses into a uint; absurdly long digit runs fail to parse and give 0.
    fileDescriptor: Number.isSafeInteger(fd) ? fd : 0,
    expand,
    chomp,
    content: "",
  };
}

/** parseHeredoc without errors (BuildKit's MustParseHeredoc). */
export function mustParseHeredoc(src: string): Heredoc | undefined {
  try {
    return parseHeredoc(src);
  } catch {
    return undefined;
  }
}

function countQuotes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x27 || c === 0x22) n++;
  }
  return n;
}

/** The heredoc markers of an instruction line, in order. */
export function heredocsFromLine(line: string): Heredoc[] {
  const lex = new ShellLex("\\");
  lex.rawQuotes = true;
  lex.rawEscapes = true;
  lex.skipUnsetEnv = true;
  let words: string[];
  try {
    words = lex.processWords(line, emptyEnv);
  } catch {
    words = [];
  }
  const docs: Heredoc[] = [];
  for (const w of words) {
    const h = parseHeredoc(w);
    if (h) docs.push(h);
  }
  return docs;
}

/** Strips leading tabs from every line (for `<<-`). */
export function chompHeredocContent(src: string): string {
  // Go's (?m)^ starts a line only after \n (JavaScript's also after \r, U+2028, U+2029).
  return src.replace(/(^|\n)\t+/g, "$1");
}
