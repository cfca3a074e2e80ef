// Go's time.ParseDuration, which HEALTHCHECK's interval flags use: `1h30m`, `1.5s`, `300ms`.
import { goQuote } from "../shell/quote.js";

const UNITS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1000n,
  "\u00b5s": 1000n,
  "\u03bcs": 1000n,
  ms: 1000000n,
  s: 1000000000n,
  m: 60000000000n,
  h: 3600000000000n,
};

const MAX = 1n << 63n;

export class DurationError extends Error {}

/** Parses a Go duration; returns nanoseconds. Throws DurationError with Go's message. */
export function parseGoDuration(orig: string): number {
  let s = orig;
  let neg = false;
  const invalid = () => new DurationError(`time: invalid duration ${goQuote(orig)}`);
  if (s !== "" && (s[0] === "-" || s[0] === "+")) {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") throw invalid();
  let d = 0n;
  const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9";
  while (s !== "") {
    if (!(s[0] === "." || isDigit(s[0]))) throw invalid();
    let i = 0;
    let v = 0n;
    while (isDigit(s[i])) {
      if (v > MAX / 10n) throw invalid();
      v = v * 10n + BigInt(s.charCodeAt(i) - 48);
      if (v > MAX) throw invalid();
      i++;
    }
    const pre = i > 0;
    s = s.slice(i);
    let f = 0n;
    let scale = 1;
    let post = false;
    if (s[0] === ".") {
      s = s.slice(1);
      let j = 0;
      let overflow = false;
      while (isDigit(s[j])) {
        if (!overflow) {
          if (f > (MAX - 1n) / 10n) {
            overflow = true;
          } else {
            const y = f * 10n + BigInt(s.charCodeAt(j) - 48);
            if (y > MAX) overflow = true;
            else {
              f = y;
              scale *= 10;
            }
          }
        }
        j++;
      }
      post = j > 0;
      s = s.slice(j);
    }
    if (!pre && !post) throw invalid();
    let k = 0;
    while (k < s.length && !(s[k] === "." || isDigit(s[k]))) k++;
    if (k === 0) throw new DurationError(`time: missing unit in duration ${goQuote(orig)}`);
    const u = s.slice(0, k);
    s = s.slice(k);
    const unit = UNITS[u];
    if (unit === undefined)
      throw new DurationError(`time: unknown unit ${goQuote(u)} in duration ${goQuote(orig)}`);
    if (v > MAX / unit) throw invalid();
    v *= unit;
    if (f > 0n) {
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > MAX) throw invalid();
    }
    d += v;
    if (d > MAX) throw invalid();
  }
  if (neg) return -Number(d);
  if (d > MAX - 1n) throw invalid();
  return Number(d);
}

/** Formats nanoseconds as Go's Duration.String does for the common cases (`1ms`, `30s`, `1m30s`). */
export function formatGoDuration(ns: number): string {
  if (ns === 0) return "0s";
  const neg = ns < 0;
  let u = Math.abs(ns);
  let out: string;
  if (u < 1e9) {
    if (u < 1e3) out = `${u}ns`;
    else if (u < 1e6) out = `${trimZeros(u / 1e3)}µs`;
    else out = `${trimZeros(u / 1e6)}ms`;
  } else {
    const h = Math.floor(u / 3600e9);
    u -= h * 3600e9;
    const m = Math.floor(u / 60e9);
    u -= m * 60e9;
    const sec = `${trimZeros(u / 1e9)}s`;
    out = h > 0 ? `${h}h${m}m${sec}` : m > 0 ? `${m}m${sec}` : sec;
  }
  return neg ? `-${out}` : out;
}

function trimZeros(n: number): string {
  return String(Number(n.toFixed(9)));
}
