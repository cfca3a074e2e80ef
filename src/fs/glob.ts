// Shell-style globs with Go's filepath.Match rules, which BuildKit uses for wildcard COPY/ADD
// sources and `rm` paths: `*` and `?` never cross "/", `[a-z]`/`[^a-z]` classes, `\` escapes.

export class BadPatternError extends Error {
  constructor(readonly pattern: string) {
    super(`syntax error in pattern: ${JSON.stringify(pattern)}`);
    this.name = "BadPatternError";
  }
}

const compiled = new Map<string, RegExp>();

/** Whether a path component or path has glob syntax (`*`, `?`, `[`) not escaped by `\`. */
export function hasWildcards(p: string): boolean {
  for (let i = 0; i < p.length; i++) {
    const ch = p[i];
    if (ch === "\\") i++;
    else if (ch === "*" || ch === "?" || ch === "[") return true;
  }
  return false;
}

/** Whether `name` matches `pattern` as a whole, as Go's filepath.Match decides. */
export function matchGlob(pattern: string, name: string): boolean {
  return compileGlob(pattern).test(name);
}

/** The anchored regular expression equivalent of a glob; throws BadPatternError if malformed. */
export function compileGlob(pattern: string): RegExp {
  let re = compiled.get(pattern);
  if (!re) {
    re = new RegExp(`^${globToRegexSource(pattern)}$`, "u");
    if (compiled.size > 1000) compiled.clear();
    compiled.set(pattern, re);
  }
  return re;
}

function globToRegexSource(pattern: string): string {
  const chars = Array.from(pattern);
  let out = "";
  let i = 0;
  const escapedChar = (): string => {
    // A character inside a class, with `\` escaping the next one; `-` and `]` need escaping there.
    let ch = chars[i];
    if (ch === undefined || ch === "-" || ch === "]") throw new BadPatternError(pattern);
    if (ch === "\\") {
      i++;
      ch = chars[i];
      if (ch === undefined) throw new BadPatternError(pattern);
    }
    i++;
    return escapeForClass(ch);
  };
  while (i < chars.length) {
    const ch = chars[i]!;
    if (ch === "*") {
      out += "[^/]*";
      i++;
    } else if (ch === "?") {
      out += "[^/]";
      i++;
    } else if (ch === "\\") {
      const next = chars[i + 1];
      if (next === undefined) throw new BadPatternError(pattern);
      out += escapeLiteral(next);
      i += 2;
    } else if (ch === "[") {
      i++;
      let cls = "[";
      if (chars[i] === "^") {
        cls += "^";
        i++;
      }
      let ranges = 0;
      for (;;) {
        if (i >= chars.length) throw new BadPatternError(pattern);
        if (chars[i] === "]" && ranges > 0) {
          i++;
          break;
        }
        const lo = escapedChar();
        if (chars[i] === "-") {
          i++;
          const hi = escapedChar();
          if (classCharValue(hi).codePointAt(0)! < classCharValue(lo).codePointAt(0)!)
            throw new BadPatternError(pattern);
          cls += `${lo}-${hi}`;
        } else cls += lo;
        ranges++;
      }
      out += `${cls}]`;
    } else {
      out += escapeLiteral(ch);
      i++;
    }
  }
  return out;
}

function escapeLiteral(ch: string): string {
  return /[\\^$.*+?()[\]{}|/]/u.test(ch) ? `\\${ch}` : ch;
}

function escapeForClass(ch: string): string {
  return /[\\\]^[-]/u.test(ch) ? `\\${ch}` : ch;
}

function classCharValue(s: string): string {
  return s.startsWith("\\") ? s.slice(1) : s;
}
