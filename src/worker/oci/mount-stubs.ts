// Mount points the runtime creates in the rootfs (e.g. /etc/hosts, /proc, a cache mount's dir) and that
// must not end up in the step's layer: recorded before the run, removed after it if still stubs.
import { execFile } from "node:child_process";
import { lstat, readdir, rmdir, stat, unlink } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { isNotFound, resolveInRoot } from "./root-path.js";

interface Stub {
  /** Host path of the first missing component of the mount destination. */
  readonly path: string;
  readonly parent: string;
  readonly parentMtimeNs: bigint;
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** Records, for each destination, the first path component missing from `rootfs`. */
export async function recordMountStubs(rootfs: string, destinations: readonly string[]): Promise<Stub[]> {
  const stubs: Stub[] = [];
  const seen = new Set<string>();
  for (const dest of destinations) {
    const parts = dest.split("/").filter((p) => p !== "" && p !== ".");
    let current = "/";
    for (const part of parts) {
      current = path.posix.join(current, part);
      const host = await resolveInRoot(rootfs, current);
      if (await exists(host)) continue;
      if (!seen.has(host)) {
        seen.add(host);
        const parent = path.dirname(host);
        const st = await stat(parent, { bigint: true }).catch(() => undefined);
        if (st) stubs.push({ path: host, parent, parentMtimeNs: st.mtimeNs });
      }
      break;
    }
  }
  return stubs;
}

/** True when `p` holds nothing but empty files and directories, i.e. only what the runtime created. */
async function onlyStubs(p: string): Promise<boolean> {
  const st = await lstat(p);
  if (st.isFile()) return st.size === 0;
  if (!st.isDirectory()) return false;
  for (const name of await readdir(p)) {
    if (!(await onlyStubs(path.join(p, name)))) return false;
  }
  return true;
}

async function removeStubTree(p: string): Promise<void> {
  const st = await lstat(p);
  if (st.isDirectory()) {
    for (const name of await readdir(p)) await removeStubTree(path.join(p, name));
    await rmdir(p);
  } else {
    await unlink(p);
  }
}

const execFileP = promisify(execFile);

/**
 * Sets a directory's mtime to the nanosecond: layer differs compare times exactly, and Node's utimes
 * goes through a double that cannot hold today's times in nanoseconds, so touch(1) does it.
 */
async function restoreMtime(dir: string, mtimeNs: bigint): Promise<void> {
  const sec = mtimeNs / 1_000_000_000n;
  const frac = (mtimeNs % 1_000_000_000n).toString().padStart(9, "0");
  await execFileP("touch", ["-c", "-m", "-d", `@${sec}.${frac}`, dir]);
}

/**
 * Removes the recorded stubs that are still only stubs (deepest first) and restores their parents'
 * mtimes, so an unchanged parent directory does not show up as changed in the layer.
 */
export async function removeMountStubs(stubs: readonly Stub[]): Promise<void> {
  const ordered = [...stubs].sort((a, b) => b.path.length - a.path.length);
  for (const stub of ordered) {
    try {
      if (!(await onlyStubs(stub.path))) continue;
      await removeStubTree(stub.path);
      await restoreMtime(stub.parent, stub.parentMtimeNs);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
