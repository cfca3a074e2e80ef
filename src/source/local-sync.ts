// Incremental sync of a local build context into the engine's copy of it: only entries whose
// metadata (size, mtime, mode, owner, inode, link target) changed since the last sync are read and
// copied; deleted ones are removed. Ignore patterns (.dockerignore) and include patterns
// (the paths the build actually uses) decide what is sent at all. As in BuildKit, what arrives is
// owned by root: a context's files belong to no user of the image until COPY --chown says so.

import { lstatSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { chmod, copyFile, lchown, lutimes, mkdir, readFile, rm, symlink, utimes } from "node:fs/promises";
import { dirname, join } from "node:path";
import { writeFileAtomically } from "../fs/atomic-write.js";
import { PatternMatcher } from "../fs/patterns.js";

/** What a sync knows of one entry of a local directory; the wire sync sends the same record. */
export interface EntryMeta {
  readonly type: "file" | "dir" | "symlink";
  readonly size: number;
  readonly mtimeMs: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly ino: number;
  readonly link?: string;
}

/** Relative paths (`a/b.txt`) → metadata: a scan of the client's directory, or the last sync's record of it. */
export type Manifest = Record<string, EntryMeta>;

export interface SyncOptions {
  /** .dockerignore patterns. */
  readonly exclude?: readonly string[];
  /** Only these paths (and what is below them) are sent; empty = everything. */
  readonly include?: readonly string[];
}

export interface SyncStats {
  readonly files: number;
  readonly copied: number;
  readonly removed: number;
  readonly bytesCopied: number;
}

function sameMeta(a: EntryMeta | undefined, b: EntryMeta): boolean {
  return (
    !!a &&
    a.type === b.type &&
    a.size === b.size &&
    a.mtimeMs === b.mtimeMs &&
    a.mode === b.mode &&
    a.uid === b.uid &&
    a.gid === b.gid &&
    a.ino === b.ino &&
    a.link === b.link
  );
}

/** Include patterns compiled once per scan: `included` runs for every entry of the context. */
interface IncludeRule {
  readonly clean: string;
  readonly matcher: PatternMatcher;
}

function includeRules(include: readonly string[]): IncludeRule[] {
  return include.map((p) => {
    const clean = p.replace(/^\.?\/+/, "").replace(/\/+$/, "");
    return { clean, matcher: new PatternMatcher([clean]) };
  });
}

function included(path: string, rules: readonly IncludeRule[]): boolean {
  if (rules.length === 0) return true;
  return rules.some(
    ({ clean, matcher }) =>
      clean === "" ||
      clean === "." ||
      path === clean ||
      path.startsWith(`${clean}/`) ||
      clean.startsWith(`${path}/`) ||
      matcher.matches(path),
  );
}

/**
 * Walks `src` with the ignore rules, returning relative paths → metadata. Synchronous metadata
 * calls, as in fs/tree-walk.ts: a promise per lstat costs more than the syscall itself, and a
 * no-op rebuild of a large context is mostly this walk.
 */
export async function scanLocalDirectory(src: string, opts: SyncOptions): Promise<Manifest> {
  const excluder = opts.exclude?.length ? new PatternMatcher(opts.exclude) : undefined;
  const include = includeRules(opts.include ?? []);
  const out: Manifest = {};
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(src, rel))) {
      const path = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(src, path));
      const isDir = st.isDirectory();
      const excluded = excluder?.matches(path) ?? false;
      if (excluded && !(isDir && excluder?.subtreeMayDiffer(path))) continue;
      if (!included(path, include)) continue;
      const type = isDir ? "dir" : st.isSymbolicLink() ? "symlink" : st.isFile() ? "file" : undefined;
      if (!type) continue; // sockets, fifos and devices are not part of a build context
      if (!excluded) {
        out[path] = {
          type,
          size: type === "file" ? st.size : 0,
          mtimeMs: st.mtimeMs,
          mode: st.mode & 0o7777,
          uid: st.uid,
          gid: st.gid,
          ino: st.ino,
          link: type === "symlink" ? readlinkSync(join(src, path)) : undefined,
        };
      }
      if (isDir) walk(path);
    }
  };
  walk("");
  return out;
}

/** Brings `dest` in line with `src`; returns what it did. */
export async function syncLocalContext(
  src: string,
  dest: string,
  opts: SyncOptions = {},
): Promise<SyncStats> {
  const previous = await readSyncManifest(dest);
  const current = await scanLocalDirectory(src, opts);
  return applySync(dest, previous, current, (path, to) => copyFile(join(src, path), to));
}

/**
 * The manifest of the last sync into `dest` (creating `dest` if needed). Without one (first sync,
 * or a crash mid-write) the copy cannot be trusted, so it is emptied and everything is sent again.
 */
export async function readSyncManifest(dest: string): Promise<Manifest> {
  await mkdir(dest, { recursive: true });
  try {
    return JSON.parse(await readFile(manifestPath(dest), "utf8")) as Manifest;
  } catch {
    await rm(dest, { recursive: true, force: true });
    await mkdir(dest, { recursive: true });
    return {};
  }
}

/** The regular files and symlinks of `current` that `previous` does not already have as they are. */
export function changedEntries(previous: Manifest, current: Manifest): string[] {
  return Object.keys(current)
    .sort()
    .filter((p) => current[p]!.type !== "dir" && !sameMeta(previous[p], current[p]!));
}

/**
 * Makes `dest` match `current`, given what `previous` says it holds: removes what went, creates
 * directories, asks `placeFile` to put each changed regular file's content at its path (copied
 * from a local directory, or moved from where the wire delivered it), then records `current`.
 */
export async function applySync(
  dest: string,
  previous: Manifest,
  current: Manifest,
  placeFile: (path: string, to: string) => Promise<void>,
): Promise<SyncStats> {
  // An unchanged context leaves the copy and its manifest untouched, so the manifest's identity
  // (syncedCopyVersion) stays a valid key for whatever was computed from the copy.
  if (sameManifest(previous, current))
    return { files: Object.keys(current).length, copied: 0, removed: 0, bytesCopied: 0 };
  // From here until the new manifest is in place the copy matches neither manifest: without one,
  // a crash in between makes the next sync start afresh instead of trusting a half-applied copy.
  await rm(manifestPath(dest), { force: true });
  let removed = 0;
  // Deepest first, so directories are emptied before they go.
  for (const path of Object.keys(previous).sort().reverse()) {
    if (!current[path] || current[path]!.type !== previous[path]!.type) {
      await rm(join(dest, path), { recursive: true, force: true });
      removed++;
    }
  }
  let copied = 0;
  let bytesCopied = 0;
  const paths = Object.keys(current).sort();
  // Directories first (parents before children), then files in parallel, then directory times.
  for (const path of paths) {
    const m = current[path]!;
    if (m.type !== "dir") continue;
    await mkdir(join(dest, path), { recursive: true });
    if (!sameMeta(previous[path], m)) {
      await chmod(join(dest, path), m.mode);
      await lchown(join(dest, path), 0, 0);
    }
  }
  const files = changedEntries(previous, current);
  const BATCH = 64;
  for (let i = 0; i < files.length; i += BATCH) {
    await Promise.all(
      files.slice(i, i + BATCH).map(async (path) => {
        const m = current[path]!;
        const to = join(dest, path);
        await rm(to, { recursive: true, force: true });
        // The parent may be an ignored directory whose exception (`!a/x`) brought this entry back.
        await mkdir(dirname(to), { recursive: true });
        if (m.type === "symlink") {
          await symlink(m.link!, to);
          await lchown(to, 0, 0);
          await lutimes(to, m.mtimeMs / 1000, m.mtimeMs / 1000);
        } else {
          await placeFile(path, to);
          await chmod(to, m.mode);
          await lchown(to, 0, 0);
          await utimes(to, m.mtimeMs / 1000, m.mtimeMs / 1000);
          bytesCopied += m.size;
        }
        copied++;
      }),
    );
  }
  for (const path of paths.reverse()) {
    const m = current[path]!;
    if (m.type === "dir" && !sameMeta(previous[path], m))
      await utimes(join(dest, path), m.mtimeMs / 1000, m.mtimeMs / 1000);
  }
  await writeFileAtomically(manifestPath(dest), JSON.stringify(current));
  return { files: paths.length, copied, removed, bytesCopied };
}

function sameManifest(previous: Manifest, current: Manifest): boolean {
  const paths = Object.keys(current);
  return (
    paths.length === Object.keys(previous).length && paths.every((p) => sameMeta(previous[p], current[p]!))
  );
}

/**
 * Identifies the state of a synced copy: it changes whenever a sync changes the copy, and is
 * undefined while the copy is not known to be complete. Results computed from the copy (content
 * checksums) may be kept under it.
 */
export function syncedCopyVersion(dest: string): string | undefined {
  const st = statSync(manifestPath(dest), { bigint: true, throwIfNoEntry: false });
  return st ? `${st.ino}:${st.mtimeNs}:${st.size}` : undefined;
}

/** What the last sync saw, kept beside (not inside) the copy so builds never see it. */
function manifestPath(dest: string): string {
  return `${dest.replace(/\/+$/, "")}.sync-manifest.json`;
}
