// Wildcard source paths (`COPY *.txt`, `rm /tmp/*`), expanded as BuildKit's fsutil does: the
// components before the first wildcard are resolved inside the root (following symlinks), the
// rest are matched component by component with Go's filepath.Match, without following symlinks
// to directories below that point, and a matching directory is not descended into.
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { cleanPath, splitDirBase } from "./clean-path.js";
import { compileGlob, hasWildcards } from "./glob.js";
import { isAbsentError, pathInRoot, resolveInRoot } from "./scoped-path.js";
import { compareNames } from "./tree-walk.js";

/** Splits a path at its first component with a wildcard: "/a/b*\/c" → ["/a", "b*\/c"]. */
export function splitAtFirstWildcard(p: string): [string, string] {
  const parts = cleanPath(`/${p}`).split("/").slice(1);
  const first = parts.findIndex((part) => hasWildcards(part));
  if (first < 0) return [`/${parts.join("/")}`, ""];
  return [`/${parts.slice(0, first).join("/")}`, parts.slice(first).join("/")];
}

/**
 * The paths in `root` (as seen from inside it, "/a/b") that `pattern` matches, in walk order.
 * A pattern without wildcards is returned as it is, whether it exists or not.
 */
export async function resolveWildcards(
  root: string,
  pattern: string,
  followSymlink: boolean,
): Promise<string[]> {
  const [fixed, rest] = splitAtFirstWildcard(pattern);
  if (rest === "") return [fixed];
  const base = await resolveFinal(root, fixed, followSymlink);
  const globs = rest.split("/").map((component) => compileGlob(component));
  const out: string[] = [];
  const visit = async (hostDir: string, depth: number): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(hostDir);
    } catch (err) {
      if (isAbsentError(err)) return;
      throw err;
    }
    names.sort(compareNames);
    const glob = globs[depth]!;
    const last = depth === globs.length - 1;
    const matched = names.filter((name) => glob.test(name));
    const kinds = await Promise.all(matched.map((name) => lstat(join(hostDir, name))));
    for (let i = 0; i < matched.length; i++) {
      const hostPath = join(hostDir, matched[i]!);
      if (last) out.push(pathInRoot(root, hostPath));
      else if (kinds[i]!.isDirectory()) await visit(hostPath, depth + 1);
    }
  };
  await visit(base, 0);
  return out;
}

/** Resolves a path inside root, following its final symlink only if asked. */
export async function resolveFinal(root: string, p: string, followSymlink: boolean): Promise<string> {
  if (followSymlink) return resolveInRoot(root, p, { followFinalSymlink: true });
  const [dir, base] = splitDirBase(cleanPath(`/${p}`));
  const hostDir = await resolveInRoot(root, dir, { followFinalSymlink: true });
  return base === "" ? hostDir : join(hostDir, base);
}
