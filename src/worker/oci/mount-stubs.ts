// Mount points the runtime creates in the rootfs (e.g. /etc/hosts, /proc, a cache mount's dir) and that
// must not end up in the step's layer: recorded before the run, removed after it if still stubs.
import { lstat, readdir, rmdir, stat, unlink, utimes } from "node:fs/promises";
import path from "node:path";
import { runHostCommand } from "../../snapshot/host-commands.js";
import { isNotFound, resolveInRoot } from "./root-path.js";
import { settleAll } from "./settle-all.js";

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

/** The host path of the first component of `dest` missing from `rootfs`, if any is. */
async function firstMissing(rootfs: string, dest: string): Promise<string | undefined> {
  const parts = dest.split("/").filter((p) => p !== "" && p !== ".");
  let current = "/";
  for (const part of parts) {
    current = path.posix.join(current, part);
    const host = await resolveInRoot(rootfs, current);
    if (!(await exists(host))) return host;
  }
  return undefined;
}

/** Records, for each destination, the first path component missing from `rootfs` (looked up concurrently). */
export async function recordMountStubs(rootfs: string, destinations: readonly string[]): Promise<Stub[]> {
  const missing = await Promise.all(destinations.map((dest) => firstMissing(rootfs, dest)));
  const unique = [...new Set(missing.filter((host): host is string => host !== undefined))];
  const stubs = await Promise.all(
    unique.map(async (host): Promise<Stub | undefined> => {
      const parent = path.dirname(host);
      const st = await stat(parent, { bigint: true }).catch(() => undefined);
      return st ? { path: host, parent, parentMtimeNs: st.mtimeNs } : undefined;
    }),
  );
  return stubs.filter((s): s is Stub => s !== undefined);
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

/**
 * Sets a directory's mtime to the nanosecond: layer differs compare times exactly. Node's utimes
 * goes through a double (and libuv keeps microseconds), which is exact for the whole-second
 * times image layers carry; the result is checked, and any other time goes through touch(1).
 */
async function restoreMtime(dir: string, mtimeNs: bigint): Promise<void> {
  const before = await lstat(dir, { bigint: true });
  if (before.mtimeNs === mtimeNs) return;
  if (mtimeNs >= 0n && mtimeNs % 1000n === 0n) {
    const seconds = Number(mtimeNs / 1_000_000_000n) + Number(mtimeNs % 1_000_000_000n) / 1e9;
    const set = await utimes(dir, Number(before.atimeNs / 1000n) / 1e6, seconds).then(
      () => true,
      () => false,
    );
    if (set && (await lstat(dir, { bigint: true })).mtimeNs === mtimeNs) return;
  }
  const sec = mtimeNs / 1_000_000_000n;
  const frac = (mtimeNs % 1_000_000_000n).toString().padStart(9, "0");
  await runHostCommand("touch", ["-c", "-m", "-d", `@${sec}.${frac}`, dir]);
}

/**
 * Removes the recorded stubs that are still only stubs, then restores the mtimes of the
 * directories they were removed from, once each, so an unchanged parent directory does not show
 * up as changed in the layer. Stubs are first missing components, so no stub lies inside another
 * and they are handled concurrently.
 */
export async function removeMountStubs(stubs: readonly Stub[]): Promise<void> {
  const removed = await settleAll(stubs, async (stub) => {
    try {
      if (!(await onlyStubs(stub.path))) return undefined;
      await removeStubTree(stub.path);
      return stub;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      return undefined;
    }
  });
  const parents = new Map<string, bigint>();
  for (const stub of removed)
    if (stub && !parents.has(stub.parent)) parents.set(stub.parent, stub.parentMtimeNs);
  await settleAll([...parents], async ([parent, mtimeNs]) => {
    try {
      await restoreMtime(parent, mtimeNs);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  });
}
