// Copies a walked tree onto a target path with `cp -a` semantics as BuildKit's fsutil copy has
// them: directories merge into existing ones, files replace files, symlinks are copied as links,
// hard links within the copied set stay linked, and metadata is set after content (directories
// last, deepest first, so their times survive the writes below them).
import { execFile } from "node:child_process";
import { constants, type Stats } from "node:fs";
import { copyFile, link, lstat, mkdir, readlink, rm, symlink, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { forEachBounded } from "../../fs/bounded-parallel.js";
import { isAbsentError, pathInRoot } from "../../fs/scoped-path.js";
import type { TreeEntry } from "../../fs/tree-walk.js";
import type { DeferredLinks } from "./deferred-links.js";
import { FileOpError } from "./errors.js";
import { applyMetadata, type MetadataOptions, setTimes } from "./metadata.js";

const run = promisify(execFile);

export interface TreeCopyOptions extends MetadataOptions {
  /** Replace anything in the way, whatever its type, rather than failing (directories still merge). */
  readonly alwaysReplaceExistingDestPaths?: boolean;
  /** The destination root, for error messages. */
  readonly destRoot: string;
  /** File operations in flight at once. */
  readonly concurrency?: number;
  /** Where files that would land unchanged in directories this copy creates go instead (see DeferredLinks). */
  readonly deferredLinks?: DeferredLinks;
}

const DEFAULT_CONCURRENCY = 64;

/** Copies `entries` (from walkTree, first entry the source itself) so the first lands at `target`. */
export async function copyTree(
  entries: readonly TreeEntry[],
  target: string,
  options: TreeCopyOptions,
): Promise<void> {
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const shown = (p: string) => pathInRoot(options.destRoot, p);
  const targetOf = (e: TreeEntry) => (e.rel === "" ? target : join(target, e.rel));
  // Directories this copy created: nothing can be in the way below them, so no lstat is needed.
  const fresh = new Set<string>();
  const parentIsFresh = (e: TreeEntry) => e.rel !== "" && fresh.has(dirname(targetOf(e)));
  let rootDirExisted = false;
  // Directories whose new children take the directory's group (set-gid) instead of ours.
  const groupInheriting = new Set<string>();
  const noteGroupInheritance = (dir: string, mode: number) => {
    if (mode & S_ISGID) groupInheriting.add(dir);
  };
  const targetParent = dirname(target);
  const parentStat = await lstatOrUndefined(targetParent);
  if (parentStat) noteGroupInheritance(targetParent, parentStat.mode);

  const dirs = entries.filter((e) => e.stat.isDirectory());
  for (const entry of dirs) {
    const to = targetOf(entry);
    if (!parentIsFresh(entry)) {
      const existing = await lstatOrUndefined(to);
      if (existing?.isDirectory()) {
        if (entry.rel === "") rootDirExisted = true;
        noteGroupInheritance(to, existing.mode);
        continue;
      }
      if (existing) {
        if (!options.alwaysReplaceExistingDestPaths)
          throw new FileOpError(`cannot copy to non-directory: ${shown(to)}`, "conflict", shown(to));
        await rm(to, { recursive: true, force: true });
      }
    }
    await mkdir(to);
    fresh.add(to);
    // mkdir inherits set-gid from its parent; the source's mode is only applied at the end.
    if (groupInheriting.has(dirname(to))) groupInheriting.add(to);
  }

  // Hard links: the first path of an inode in walk order is copied, the others link to it.
  const leaders = new Map<string, TreeEntry>();
  const followers: [TreeEntry, TreeEntry][] = [];
  const copies: TreeEntry[] = [];
  for (const entry of entries) {
    if (entry.stat.isDirectory()) continue;
    if (entry.stat.isFile() && entry.stat.nlink > 1) {
      const key = `${entry.stat.dev}:${entry.stat.ino}`;
      const leader = leaders.get(key);
      if (leader) {
        followers.push([entry, leader]);
        continue;
      }
      leaders.set(key, entry);
    }
    copies.push(entry);
  }

  const clearWay = async (entry: TreeEntry, to: string) => {
    if (parentIsFresh(entry)) return;
    const existing = await lstatOrUndefined(to);
    if (!existing) return;
    if (existing.isDirectory()) {
      if (!options.alwaysReplaceExistingDestPaths)
        throw new FileOpError(`cannot replace to directory ${shown(to)} with file`, "conflict", shown(to));
      await rm(to, { recursive: true, force: true });
    } else await unlink(to);
  };

  const linkable = (entry: TreeEntry, to: string): boolean =>
    options.deferredLinks !== undefined &&
    entry.stat.isFile() &&
    parentIsFresh(entry) &&
    !options.mode &&
    !options.utime &&
    (options.owner?.uid ?? entry.stat.uid) === entry.stat.uid &&
    (options.owner?.gid ?? entry.stat.gid) === entry.stat.gid &&
    !groupInheriting.has(dirname(to));

  await forEachBounded(copies, concurrency, async (entry) => {
    const to = targetOf(entry);
    if (linkable(entry, to)) {
      options.deferredLinks!.defer(entry.hostPath, to);
      return;
    }
    await clearWay(entry, to);
    if (!(await createNode(entry.hostPath, entry.stat, to))) return;
    const uid = options.owner?.uid ?? entry.stat.uid;
    const gid = options.owner?.gid ?? entry.stat.gid;
    if (entry.stat.isFile() && !options.mode && ownedByUs(uid, gid) && !groupInheriting.has(dirname(to))) {
      // copyFile made it ours with the source's mode already: only the times are left to set.
      await setTimes(to, options.utime ?? entry.stat, false);
      return;
    }
    await applyMetadata(to, entry.stat, options);
  });
  await forEachBounded(followers, concurrency, async ([entry, leader]) => {
    const to = targetOf(entry);
    await clearWay(entry, to);
    await link(targetOf(leader), to);
  });

  // Deepest directories first: setting a parent's times before its children are done is lost.
  for (let i = dirs.length - 1; i >= 0; i--) {
    const entry = dirs[i]!;
    const to = targetOf(entry);
    // An existing target directory keeps its owner and mode; only its times follow the source.
    if (entry.rel === "" && rootDirExisted) await setTimes(to, options.utime ?? entry.stat, false);
    else await applyMetadata(to, entry.stat, options);
  }
}

const S_ISGID = 0o2000;
const processUid = process.geteuid?.() ?? -1;
const processGid = process.getegid?.() ?? -1;

/** Whether a file this process creates already has this owner (so no chown is needed). */
function ownedByUs(uid: number, gid: number): boolean {
  return uid === processUid && gid === processGid;
}

/** Creates the non-directory node; false for kinds that cannot be copied (sockets). */
async function createNode(source: string, st: Stats, to: string): Promise<boolean> {
  if (st.isFile()) {
    // A reflink where the filesystem has them (btrfs, xfs), a kernel-side copy otherwise.
    await copyFile(source, to, constants.COPYFILE_FICLONE);
    return true;
  }
  if (st.isSymbolicLink()) {
    await symlink(await readlink(source), to);
    return true;
  }
  if (st.isFIFO()) {
    await run("mknod", [to, "p"]);
    return true;
  }
  if (st.isCharacterDevice() || st.isBlockDevice()) {
    const { major, minor } = splitDeviceNumber(st.rdev);
    await run("mknod", [to, st.isCharacterDevice() ? "c" : "b", String(major), String(minor)]);
    return true;
  }
  return false;
}

/** Linux's dev_t layout (glibc's gnu_dev_major/minor). */
export function splitDeviceNumber(rdev: number): { major: number; minor: number } {
  const dev = BigInt(rdev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

async function lstatOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await lstat(p);
  } catch (err) {
    if (isAbsentError(err)) return undefined;
    throw err;
  }
}
