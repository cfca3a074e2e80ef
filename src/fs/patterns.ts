// Path patterns with moby/patternmatcher semantics, shared by .dockerignore, COPY --exclude and
// include/exclude filters of copies and checksums: `*`/`?` within one component, `[...]`
// classes, `**` across components, `!` exceptions, and a pattern matching a directory matching
// everything below it. Later patterns win over earlier ones.
import { cleanPath } from "./clean-path.js";
import { BadPatternError, compileGlob } from "./glob.js";

type MatchKind = "exact" | "prefix" | "suffix" | "regexp";

interface CompiledPattern {
  /** The cleaned pattern without its `!`. */
  readonly text: string;
  readonly exclusion: boolean;
  readonly kind: MatchKind;
  readonly regexp?: RegExp;
  readonly components: readonly string[];
}

export class InvalidPatternError extends Error {
  constructor(
    readonly pattern: string,
    reason: string,
  ) {
    super(`invalid pattern ${JSON.stringify(pattern)}: ${reason}`);
    this.name = "InvalidPatternError";
  }
}

/** Cleans a pattern or path as patternmatcher and .dockerignore do: "./a/", "/a" → "a". */
export function cleanRelativePath(p: string): string {
  let cleaned = cleanPath(p);
  while (cleaned.startsWith("/") && cleaned.length > 1) cleaned = cleanPath(cleaned.slice(1));
  return cleaned;
}

export class PatternMatcher {
  private readonly compiled: readonly CompiledPattern[];
  /** Component matchers for `subtreeMayDiffer`, compiled on first use. */
  private readonly componentCache = new Map<string, CompiledPattern>();

  constructor(patterns: readonly string[]) {
    const compiled: CompiledPattern[] = [];
    for (const raw of patterns) {
      let p = raw.trim();
      if (p === "") continue;
      const exclusion = p.startsWith("!");
      if (exclusion) {
        p = p.slice(1).trim();
        if (p === "") throw new InvalidPatternError(raw, 'illegal exclusion pattern: "!"');
      }
      p = cleanRelativePath(p);
      try {
        compileGlob(p);
      } catch (err) {
        if (err instanceof BadPatternError) throw new InvalidPatternError(raw, "syntax error in pattern");
        throw err;
      }
      compiled.push(compilePattern(p, exclusion));
    }
    this.compiled = compiled;
  }

  get isEmpty(): boolean {
    return this.compiled.length === 0;
  }

  /** Whether some pattern is an `!` exception. */
  get hasExclusions(): boolean {
    return this.compiled.some((p) => p.exclusion);
  }

  /** The cleaned patterns, `!` kept, in order. */
  get patterns(): readonly string[] {
    return this.compiled.map((p) => (p.exclusion ? `!${p.text}` : p.text));
  }

  /**
   * Whether a slash-separated path relative to the patterns' base matches: the last pattern that
   * matches it or one of its parent directories decides (patternmatcher's MatchesOrParentMatches).
   */
  matches(path: string): boolean {
    const file = cleanRelativePath(path);
    if (file === ".") return false;
    const parents = parentPrefixes(file);
    let matched = false;
    for (const pattern of this.compiled) {
      // An inclusion cannot change a match, an exclusion cannot change a non-match.
      if (pattern.exclusion !== matched) continue;
      if (matchesSelfOrParent(pattern, file, parents)) matched = !pattern.exclusion;
    }
    return matched;
  }

  /**
   * Whether some path below directory `dir` could get a different answer from `matches(dir)`.
   * When false, a walk can take `dir`'s answer for its whole subtree and skip reading it. The
   * answer errs towards true (a `**` inside a pattern is assumed to reach anywhere).
   */
  subtreeMayDiffer(dir: string): boolean {
    const cleaned = cleanRelativePath(dir);
    const dirComponents = cleaned === "." ? [] : cleaned.split("/");
    const dirResult = cleaned === "." ? false : this.matches(cleaned);
    const parents = cleaned === "." ? [] : parentPrefixes(cleaned);
    for (const pattern of this.compiled) {
      // Only a pattern whose verdict differs from dir's can change a descendant's answer.
      if (pattern.exclusion !== dirResult) continue;
      if (cleaned !== "." && matchesSelfOrParent(pattern, cleaned, parents)) continue;
      if (this.couldMatchBelow(pattern.components, 0, dirComponents, 0)) return true;
    }
    return false;
  }

  private couldMatchBelow(pattern: readonly string[], i: number, dir: readonly string[], j: number): boolean {
    if (j === dir.length) return i < pattern.length;
    if (i === pattern.length) return false;
    const component = pattern[i]!;
    if (component.includes("**")) return true;
    if (!this.componentMatcher(component, dir[j]!)) return false;
    return this.couldMatchBelow(pattern, i + 1, dir, j + 1);
  }

  private componentMatcher(component: string, name: string): boolean {
    let compiled = this.componentCache.get(component);
    if (!compiled) {
      compiled = compilePattern(component, false);
      this.componentCache.set(component, compiled);
    }
    return matchPattern(compiled, name);
  }
}

/**
 * Reads a .dockerignore file as moby's ignorefile.ReadAll does: BOM stripped, `#` comment lines
 * skipped, whitespace trimmed, paths cleaned and made relative ("/a" → "a"), `!` kept.
 */
export function parseIgnoreFile(text: string): string[] {
  const out: string[] = [];
  const lines = text.replace(/^\uFEFF/u, "").split("\n");
  for (const rawLine of lines) {
    const line = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
    if (line.startsWith("#")) continue;
    let pattern = line.trim();
    if (pattern === "") continue;
    const invert = pattern.startsWith("!");
    if (invert) pattern = pattern.slice(1).trim();
    if (pattern.length > 0) {
      pattern = cleanPath(pattern);
      if (pattern.length > 1 && pattern.startsWith("/")) pattern = pattern.slice(1);
    }
    out.push(invert ? `!${pattern}` : pattern);
  }
  return out;
}

function parentPrefixes(file: string): string[] {
  const parts = file.split("/");
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join("/"));
  return out;
}

function matchesSelfOrParent(pattern: CompiledPattern, file: string, parents: readonly string[]): boolean {
  if (matchPattern(pattern, file)) return true;
  return parents.some((parent) => matchPattern(pattern, parent));
}

function matchPattern(p: CompiledPattern, path: string): boolean {
  switch (p.kind) {
    case "exact":
      return path === p.text;
    case "prefix":
      return path.startsWith(p.text.slice(0, -2));
    case "suffix": {
      const suffix = p.text.slice(2);
      if (path.endsWith(suffix)) return true;
      return suffix.startsWith("/") && path === suffix.slice(1);
    }
    case "regexp":
      return p.regexp!.test(path);
  }
}

/**
 * Translates a cleaned pattern the way patternmatcher does, including its shortcuts: a pattern
 * with no wildcards is an exact match, `abc**` a prefix match, `**abc` a suffix match.
 */
function compilePattern(text: string, exclusion: boolean): CompiledPattern {
  const chars = Array.from(text);
  let kind: MatchKind = "exact";
  let source = "^";
  let inClass = false;
  for (let i = 0, iteration = 0; i < chars.length; iteration++) {
    const ch = chars[i++]!;
    if (ch === "*") {
      if (chars[i] === "*") {
        i++;
        // "**/" is "**": the slash is eaten.
        if (chars[i] === "/") i++;
        if (i >= chars.length) {
          // Trailing "**" accepts everything, as in .gitignore.
          if (kind === "exact") kind = "prefix";
          else {
            source += ".*";
            kind = "regexp";
          }
        } else {
          source += "(.*/)?";
          kind = "regexp";
        }
        if (iteration === 0) kind = "suffix";
      } else {
        source += "[^/]*";
        kind = "regexp";
      }
    } else if (ch === "?") {
      source += "[^/]";
      kind = "regexp";
    } else if (ch === "\\") {
      if (i < chars.length) {
        source += inClass ? escapeClassChar(chars[i++]!) : escapeRegexChar(chars[i++]!);
        kind = "regexp";
      } else source += "\\\\";
    } else if (ch === "[") {
      source += inClass ? "\\[" : "[";
      inClass = true;
      kind = "regexp";
    } else if (ch === "]") {
      source += inClass ? "]" : "\\]";
      inClass = false;
      kind = "regexp";
    } else if (".+()|{}$/".includes(ch)) {
      source += `\\${ch}`;
    } else {
      source += ch;
    }
  }
  const components = text.split("/");
  if (kind !== "regexp") return { text, exclusion, kind, components };
  let regexp: RegExp;
  try {
    regexp = new RegExp(`${source}$`, "u");
  } catch {
    throw new InvalidPatternError(exclusion ? `!${text}` : text, "syntax error in pattern");
  }
  return { text, exclusion, kind, regexp, components };
}

function escapeRegexChar(ch: string): string {
  return /[\\^$.*+?()[\]{}|/]/u.test(ch) ? `\\${ch}` : ch;
}

function escapeClassChar(ch: string): string {
  return /[\\\]^[-]/u.test(ch) ? `\\${ch}` : ch;
}
