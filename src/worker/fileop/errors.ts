// Errors of file actions, worded for the person who wrote the Dockerfile: paths as seen inside
// the build's filesystems (never the host's snapshot directories), BuildKit's phrasing.
import { pathInRoot } from "../../fs/scoped-path.js";

export type FileOpErrorKind = "not-found" | "conflict" | "invalid" | "io";

export class FileOpError extends Error {
  constructor(
    message: string,
    readonly kind: FileOpErrorKind = "invalid",
    /** The path concerned, as seen inside the filesystem. */
    readonly path?: string,
  ) {
    super(message);
    this.name = "FileOpError";
  }
}

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: "no such file or directory",
  ENOTDIR: "not a directory",
  EEXIST: "file exists",
  EISDIR: "is a directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ELOOP: "too many levels of symbolic links",
  ENOSPC: "no space left on device",
  ENOTEMPTY: "directory not empty",
  EXDEV: "invalid cross-device link",
  EROFS: "read-only file system",
};

/**
 * Rewrites a Node system error (`ENOENT: no such file or directory, open '/var/lib/…/x'`) as
 * `open /x: no such file or directory`, with the path shown inside whichever root holds it.
 */
export function toFileOpError(err: unknown, roots: readonly (string | undefined)[]): unknown {
  if (err instanceof FileOpError) return err;
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code !== "string" || typeof e.syscall !== "string") return err;
  const text = ERRNO_TEXT[e.code] ?? e.code.toLowerCase();
  const inRoot = (p: string | undefined) => {
    if (p === undefined) return undefined;
    for (const root of roots) {
      if (root === undefined) continue;
      const shown = pathInRoot(root, p);
      if (shown !== p) return shown;
    }
    return p;
  };
  const path = inRoot(e.path);
  const dest = inRoot((e as { dest?: string }).dest);
  const where = [path, dest].filter((p) => p !== undefined).join(" ");
  const kind =
    e.code === "ENOENT" ? "not-found" : e.code === "EEXIST" || e.code === "ENOTDIR" ? "conflict" : "io";
  return new FileOpError(`${e.syscall}${where ? ` ${where}` : ""}: ${text}`, kind, path);
}
