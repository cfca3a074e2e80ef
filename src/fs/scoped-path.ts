// Scoped path resolution: a path inside a root directory, symlinks followed as if the root were
// "/" (as Go's securejoin and BuildKit's fs.RootPath do), so no path or link can escape the root.
import { lstat, readlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { rootedComponents } from "./clean-path.js";

/** The kernel's limit (MAXSYMLINKS is 40); BuildKit allows 255. We follow BuildKit. */
const MAX_LINKS_FOLLOWED = 255;

export interface ResolveInRootOptions {
  /** Follow a symlink in the last component too (true for reads, false for rm/symlink/lstat). */
  readonly followFinalSymlink: boolean;
}

export class SymlinkLoopError extends Error {
  constructor(readonly path: string) {
    super(`too many levels of symbolic links resolving "${path}"`);
    this.name = "SymlinkLoopError";
  }
}

/**
 * Resolves `path` (absolute or relative, both taken from the root) to a host path inside `root`.
 * Absolute link targets are taken from the root, `..` stops at the root, and components that do
 * not exist are kept as they are, so the result can be created afterwards.
 */
export async function resolveInRoot(
  root: string,
  path: string,
  options: ResolveInRootOptions = { followFinalSymlink: true },
): Promise<string> {
  const hostRoot = resolve(root);
  // A stack of components still to walk, next one last.
  const pending = rootedComponents(path).reverse();
  const resolved: string[] = [];
  let linksFollowed = 0;
  let missing = false;
  while (pending.length > 0) {
    const component = pending.pop()!;
    if (component === "..") {
      resolved.pop();
      continue;
    }
    if (missing) {
      resolved.push(component);
      continue;
    }
    const isFinal = pending.length === 0;
    const hostPath = join(hostRoot, ...resolved, component);
    let isLink: boolean;
    try {
      isLink = (await lstat(hostPath)).isSymbolicLink();
    } catch (err) {
      if (!isAbsentError(err)) throw err;
      // Nothing below a missing component can be a link: keep the rest lexically.
      missing = true;
      resolved.push(component);
      continue;
    }
    if (!isLink || (isFinal && !options.followFinalSymlink)) {
      resolved.push(component);
      continue;
    }
    if (++linksFollowed > MAX_LINKS_FOLLOWED) throw new SymlinkLoopError(path);
    const target = await readlink(hostPath);
    if (target.startsWith("/")) resolved.length = 0;
    const targetParts = target.split("/").filter((p) => p !== "" && p !== ".");
    for (let i = targetParts.length - 1; i >= 0; i--) pending.push(targetParts[i]!);
  }
  return join(hostRoot, ...resolved);
}

/** The path of `hostPath` as seen from inside `root` ("/a/b"), for messages users can act on. */
export function pathInRoot(root: string, hostPath: string): string {
  const hostRoot = resolve(root);
  const abs = resolve(hostPath);
  if (abs === hostRoot) return "/";
  return abs.startsWith(`${hostRoot}/`) ? abs.slice(hostRoot.length) : abs;
}

export function isAbsentError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}
