// Ownership, permissions and timestamps of what file actions write, and `mkdir -p` that gives
// each directory it creates a known owner, mode and time (independent of the process umask).
import type { Stats } from "node:fs";
import { chmod, lchown, lutimes, mkdir, stat, utimes } from "node:fs/promises";
import { dirname } from "node:path";
import type { ModeChange } from "./file-mode.js";
import type { FileOwner } from "./owner.js";

export interface MetadataOptions {
  /** Owner to set; undefined keeps the source's uid/gid. */
  readonly owner?: FileOwner;
  /** Permission change; undefined keeps the source's mode. */
  readonly mode?: ModeChange;
  /** Seconds since the epoch for atime and mtime; undefined keeps the source's. */
  readonly utime?: number;
}

/**
 * Gives `target` the metadata of `source` as changed by the options. Chown comes before chmod
 * because the kernel clears set-id bits on chown.
 */
export async function applyMetadata(target: string, source: Stats, options: MetadataOptions): Promise<void> {
  const uid = options.owner?.uid ?? source.uid;
  const gid = options.owner?.gid ?? source.gid;
  await lchown(target, uid, gid);
  const isLink = source.isSymbolicLink();
  if (!isLink) {
    const mode = options.mode ? options.mode(source.mode) : source.mode & 0o7777;
    await chmod(target, mode);
  }
  await setTimes(target, options.utime ?? source, isLink);
}

/** Sets atime/mtime to a time in seconds, or to those of a stat. */
export async function setTimes(target: string, time: number | Stats, isLink: boolean): Promise<void> {
  const atime = typeof time === "number" ? time : time.atimeMs / 1000;
  const mtime = typeof time === "number" ? time : time.mtimeMs / 1000;
  if (isLink) await lutimes(target, atime, mtime);
  else await utimes(target, atime, mtime);
}

/**
 * Creates `hostPath` and its missing parents with `mode`, `owner` (else the process's) and
 * `utime`; returns the directories created, outermost first. An existing non-directory in the
 * way fails with ENOTDIR, as Go's os.MkdirAll does.
 */
export async function mkdirAll(
  hostPath: string,
  mode: number,
  owner?: FileOwner,
  utime?: number,
): Promise<string[]> {
  const missing: string[] = [];
  let current = hostPath;
  for (;;) {
    try {
      const st = await stat(current);
      if (!st.isDirectory()) {
        const err: NodeJS.ErrnoException = new Error(`ENOTDIR: not a directory, mkdir '${current}'`);
        err.code = "ENOTDIR";
        err.syscall = "mkdir";
        err.path = current;
        throw err;
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      missing.push(current);
      const parent = dirname(current);
      if (parent === current) break;
      current = parent;
    }
  }
  missing.reverse();
  for (const dir of missing) {
    try {
      await mkdir(dir);
    } catch (err) {
      // Someone else made it in the meantime: fine, as long as it is a directory.
      if ((err as NodeJS.ErrnoException).code !== "EEXIST" || !(await stat(dir)).isDirectory()) throw err;
    }
    await chmod(dir, mode);
    if (owner) await lchown(dir, owner.uid, owner.gid);
  }
  // Times last and innermost first: creating a child would bump its parent's mtime again.
  if (utime !== undefined) for (const dir of [...missing].reverse()) await utimes(dir, utime, utime);
  return missing;
}
