// Resolves container paths to host paths inside a root directory, following symlinks without escaping it.
import { lstat, readlink } from "node:fs/promises";
import path from "node:path";

const MAX_SYMLINKS = 255;

/**
 * The host path of `containerPath` as seen from inside `root`: symlinks are followed, but an absolute
 * link target or `..` never leaves `root` (as a chroot would see it). Missing components are kept as
 * they are, so the result may not exist.
 */
export async function resolveInRoot(root: string, containerPath: string): Promise<string> {
  const pending = containerPath.split("/").filter((c) => c !== "" && c !== ".");
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === "..") {
      resolved.pop();
      continue;
    }
    const candidate = path.join(root, ...resolved, part);
    let target: string | undefined;
    try {
      const st = await lstat(candidate);
      if (st.isSymbolicLink()) target = await readlink(candidate);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (target === undefined) {
      resolved.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) {
      throw new Error(`too many levels of symbolic links resolving ${containerPath} in ${root}`);
    }
    if (target.startsWith("/")) resolved.length = 0;
    pending.unshift(...target.split("/").filter((c) => c !== "" && c !== "."));
  }
  return path.join(root, ...resolved);
}

export function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}
