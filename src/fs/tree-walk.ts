// Walks a file tree into a sorted list of entries, with include/exclude patterns applied as
// BuildKit's copy applies them: a path is taken if an include pattern matches it or a parent and
// no exclude pattern does; directories holding taken paths come along as parents.
import { lstatSync, readdirSync, type Stats } from "node:fs";
import { join } from "node:path";
import type { PatternMatcher } from "./patterns.js";

export interface TreeEntry {
  /** Slash-separated path below the walk's start; "" for the start itself. */
  readonly rel: string;
  readonly hostPath: string;
  /** lstat of the entry: symlinks are entries of their own, never followed. */
  readonly stat: Stats;
  /**
   * False for a directory that the patterns do not select but that holds selected entries; it is
   * recreated so they have somewhere to go.
   */
  readonly selected: boolean;
}

export interface TreeWalkOptions {
  /** Only paths (relative to the start) matching these, or below a match, are taken. */
  readonly include?: PatternMatcher;
  /** Paths matching these (or below a match) are left out, even if included. */
  readonly exclude?: PatternMatcher;
}

/**
 * The entries of the tree at `start` (a directory, file or symlink) in pre-order, names sorted
 * within each directory. `start` itself is always the first entry and always selected.
 */
export async function walkTree(start: string, options: TreeWalkOptions = {}): Promise<TreeEntry[]> {
  const include = options.include && !options.include.isEmpty ? options.include : undefined;
  const exclude = options.exclude && !options.exclude.isEmpty ? options.exclude : undefined;
  // Synchronous metadata calls: on a local disk each is a few microseconds, while a promise per
  // call costs more than the syscall and queues behind the thread pool (a 5,000-file context
  // walks in ~20 ms this way, against ~300 ms with fs/promises).
  const rootStat = lstatSync(start);
  const root: TreeEntry = { rel: "", hostPath: start, stat: rootStat, selected: true };
  if (!rootStat.isDirectory()) return [root];
  const out: TreeEntry[] = [root];
  const walkDir = (hostDir: string, relDir: string): void => {
    const names = readdirSync(hostDir).sort(compareNames);
    for (const name of names) {
      const rel = relDir === "" ? name : `${relDir}/${name}`;
      const included = include ? include.matches(rel) : true;
      const excluded = exclude ? exclude.matches(rel) : false;
      const selected = included && !excluded;
      // Skip subtrees whose every path gets the same "no" without reading them.
      if (excluded && !exclude!.subtreeMayDiffer(rel)) continue;
      if (!included && !include!.subtreeMayDiffer(rel) && !selected) continue;
      const hostPath = join(hostDir, name);
      const stat = lstatSync(hostPath);
      if (!stat.isDirectory()) {
        if (selected) out.push({ rel, hostPath, stat, selected });
        continue;
      }
      const at = out.length;
      out.push({ rel, hostPath, stat, selected });
      walkDir(hostPath, rel);
      // An unselected directory is kept only as the parent of something selected.
      if (!selected && out.length === at + 1) out.pop();
    }
  };
  walkDir(start, "");
  return out;
}

/**
 * Byte order of the names' UTF-8 (code point order), as Go's ReadDir sorts them, so walks agree
 * across implementations. JavaScript's `<` compares UTF-16 units, which differs for astral
 * characters (surrogates sort below U+E000..U+FFFF there).
 */
export function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(i);
    if (ca === cb) continue;
    const sa = ca >= 0xd800 && ca <= 0xdfff;
    const sb = cb >= 0xd800 && cb <= 0xdfff;
    if (sa === sb) return ca - cb;
    return sa ? 1 : -1;
  }
  return a.length - b.length;
}
