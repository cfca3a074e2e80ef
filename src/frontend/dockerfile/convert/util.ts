// Small pieces of BuildKit's behaviour the converter needs word for word: Go's formatting of
// string slices in history entries, path normalisation, STOPSIGNAL and --chmod validation.
import { posix } from "node:path";
import type { HealthConfig } from "../../../oci/spec.js";
import { formatGoDuration } from "../instructions/duration.js";
import { goQuote } from "../shell/quote.js";

/** Go's `%q` of a []string: `["a" "b"]`. */
export function goQuoteSlice(items: readonly string[]): string {
  return `[${items.map(goQuote).join(" ")}]`;
}

/** Go's `%v` of a []string: `[a b]`. */
export function goSlice(items: readonly string[]): string {
  return `[${items.join(" ")}]`;
}

/** Go's `%+v` of Docker's HealthcheckConfig. */
export function goHealthcheck(h: HealthConfig): string {
  const d = (n: number | undefined) => formatGoDuration(n ?? 0);
  return (
    `{Test:${goSlice(h.Test ?? [])} Interval:${d(h.Interval)} Timeout:${d(h.Timeout)} ` +
    `StartPeriod:${d(h.StartPeriod)} StartInterval:${d(h.StartInterval)} Retries:${h.Retries ?? 0}}`
  );
}

/** Go's path.Clean. */
export function cleanPath(p: string): string {
  if (p === "") return ".";
  const out = posix.normalize(p);
  return out.length > 1 && out.endsWith("/") ? out.slice(0, -1) : out;
}

/**
 * BuildKit's system.NormalizePath for Unix: `p` taken relative to `parent` (default `/`),
 * cleaned; with keepSlash a trailing `/` or `/.` survives.
 */
export function normalizePath(parent: string, p: string, keepSlash: boolean): string {
  const orig = p;
  let out = p;
  if (!posix.isAbsolute(out)) out = posix.join(parent || "/", out);
  out = cleanPath(out);
  if (keepSlash) {
    if (orig.endsWith("/") && !out.endsWith("/")) out += "/";
    else if (orig.endsWith("/.")) {
      if (out !== "/") out += "/";
      out += ".";
    }
  }
  return out;
}

/** The destination of COPY/ADD relative to the working dir (BuildKit's pathRelativeToWorkingDir). */
export function pathRelativeToWorkingDir(workdir: string, p: string): string {
  if (posix.isAbsolute(p)) return normalizePath("/", p, true);
  if (p === "." || p === "") p = "./";
  return normalizePath(workdir || "/", p, true);
}

/** BuildKit's system.NormalizeWorkdir for Unix. */
export function normalizeWorkdir(current: string, wd: string): string {
  if (wd === "") throw new Error("cannot normalize empty path");
  if (!posix.isAbsolute(wd)) wd = posix.join("/", current || "/", wd);
  return cleanPath(wd);
}

const SIGNALS: Record<string, number> = {
  ABRT: 6,
  ALRM: 14,
  BUS: 7,
  CHLD: 17,
  CLD: 17,
  CONT: 18,
  FPE: 8,
  HUP: 1,
  ILL: 4,
  INT: 2,
  IO: 29,
  IOT: 6,
  KILL: 9,
  PIPE: 13,
  POLL: 29,
  PROF: 27,
  PWR: 30,
  QUIT: 3,
  SEGV: 11,
  STKFLT: 16,
  STOP: 19,
  SYS: 31,
  TERM: 15,
  TRAP: 5,
  TSTP: 20,
  TTIN: 21,
  TTOU: 22,
  URG: 23,
  USR1: 10,
  USR2: 12,
  VTALRM: 26,
  WINCH: 28,
  XCPU: 24,
  XFSZ: 25,
  RTMIN: 34,
  RTMAX: 64,
};

/** moby/sys/signal.ParseSignal: a number, a name with or without SIG, or RTMIN+n / RTMAX-n. */
export function parseSignal(raw: string): number {
  if (/^[0-9]+$/.test(raw)) {
    const n = Number.parseInt(raw, 10);
    if (n === 0) throw new Error(`Invalid signal: ${raw}`);
    return n;
  }
  const name = raw.toUpperCase().replace(/^SIG/, "");
  const rt = /^RTM(IN|AX)([+-])([0-9]+)$/.exec(name);
  if (rt) {
    const base = rt[1] === "IN" ? 34 : 64;
    const n = Number.parseInt(rt[3]!, 10);
    const v = rt[2] === "+" ? base + n : base - n;
    if (v >= 34 && v <= 64) return v;
  }
  const v = SIGNALS[name];
  if (v === undefined) throw new Error(`Invalid signal: ${raw}`);
  return v;
}

/** Whether a symbolic chmod (`u+x,g-w`) parses as BuildKit's mode package parses it. */
export function isSymbolicMode(spec: string): boolean {
  if (spec === "") return false;
  return spec.split(",").every((c) => /^[ugoa]*(?:[-+=](?:[ugo]|[rwxXst]*))+$/.test(c));
}

/** The wildcard characters of Go's filepath.Match (escaped ones do not count). */
export function containsWildcards(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name[i];
    if (c === "*" || c === "?" || c === "[") return true;
    if (c === "\\") i++;
  }
  return false;
}

/** The first line of a heredoc, `...` appended when there are more (BuildKit's summarizeHeredoc). */
export function summarizeHeredoc(doc: string): string {
  const lines = doc.trim().replaceAll("\r\n", "\n").split("\n");
  return lines.length > 1 ? `${lines[0]}...` : lines[0]!;
}

/** BuildKit's uppercaseCmd: the first word upper-cased. */
export function uppercaseCmd(s: string): string {
  const i = s.indexOf(" ");
  return i < 0 ? s.toUpperCase() : s.slice(0, i).toUpperCase() + s.slice(i);
}
