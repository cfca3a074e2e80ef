// COPY --chmod values: octal ("755") or chmod(1) symbolic clauses ("u+x,g-w", "a=rX", "go=u"),
// as BuildKit parses them (umask 0, so "+x" means "a+x"). Parsed once, applied per file.

export class InvalidModeError extends Error {
  constructor(readonly mode: string) {
    super(
      `invalid chmod value ${JSON.stringify(mode)}: expected an octal mode like 755 or symbolic clauses like u+x,g-w`,
    );
    this.name = "InvalidModeError";
  }
}

/** Turns a file's current st_mode (type bits included) into its new permission bits (07777). */
export type ModeChange = (currentMode: number) => number;

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

const WHO_BITS: Record<string, number> = { u: 0o4700, g: 0o2070, o: 0o1007 };
const CLASS_SHIFT: Record<string, number> = { u: 6, g: 3, o: 0 };

interface Clause {
  /** Bits of the classes named (all three when none is). */
  readonly who: number;
  readonly actions: readonly { readonly op: "+" | "-" | "="; readonly perms: string }[];
}

export function parseMode(spec: string): ModeChange {
  if (/^[0-7]{1,4}$/.test(spec)) {
    const fixed = Number.parseInt(spec, 8);
    return () => fixed;
  }
  const clauses: Clause[] = [];
  for (const text of spec.split(",")) {
    const m = /^([ugoa]*)((?:[-+=][ugo]|[-+=][rwxXst]*)+)$/.exec(text);
    if (!m) throw new InvalidModeError(spec);
    let who = 0;
    for (const c of m[1]!) who |= c === "a" ? 0o7777 : WHO_BITS[c]!;
    const actions = [...m[2]!.matchAll(/([-+=])([ugo]|[rwxXst]*)/g)].map((a) => ({
      op: a[1] as "+" | "-" | "=",
      perms: a[2]!,
    }));
    clauses.push({ who: who === 0 ? 0o7777 : who, actions });
  }
  return (currentMode) => applyClauses(clauses, currentMode);
}

function applyClauses(clauses: readonly Clause[], currentMode: number): number {
  const isDir = (currentMode & S_IFMT) === S_IFDIR;
  let mode = currentMode & 0o7777;
  for (const clause of clauses) {
    for (const { op, perms } of clause.actions) {
      let bits: number;
      if (perms === "u" || perms === "g" || perms === "o") {
        // Copy one class's rwx into the named classes.
        const rwx = (mode >> CLASS_SHIFT[perms]!) & 0o7;
        bits = (rwx << 6) | (rwx << 3) | rwx;
      } else {
        bits = 0;
        for (const p of perms) {
          if (p === "r") bits |= 0o444;
          else if (p === "w") bits |= 0o222;
          else if (p === "x") bits |= 0o111;
          else if (p === "X") bits |= isDir || (mode & 0o111) !== 0 ? 0o111 : 0;
          else if (p === "s") bits |= 0o6000;
          else if (p === "t") bits |= 0o1000;
        }
      }
      // Set-id bits go only to their own class, sticky only through "o" (or no class named).
      bits &= clause.who;
      if (op === "+") mode |= bits;
      else if (op === "-") mode &= ~bits;
      else mode = (mode & ~(clause.who & 0o6777)) | bits;
    }
  }
  return mode;
}

/** A fixed octal mode as BuildKit applies it to copies: permission and set-id/sticky bits. */
export function fixedMode(mode: number): ModeChange {
  const bits = mode & 0o7777;
  return () => bits;
}
