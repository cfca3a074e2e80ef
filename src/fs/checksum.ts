// Content checksums for cache keys: a digest of what a copy would take from a filesystem —
// relative paths, types, permission bits, owners, symlink targets, hard-link structure and file
// contents — and nothing else. Like BuildKit's contenthash it ignores times, so touching a file
// does not invalidate a cache entry, and it covers only the selected paths, so editing a file a
// COPY does not take does not either.
import { createHash } from "node:crypto";
import { createReadStream, type Stats } from "node:fs";
import { lstat, readFile, readlink } from "node:fs/promises";
import type { Digest } from "../oci/digest.js";
import { forEachBounded } from "./bounded-parallel.js";
import { cleanPath } from "./clean-path.js";
import { PatternMatcher } from "./patterns.js";
import { isAbsentError } from "./scoped-path.js";
import { type TreeEntry, walkTree } from "./tree-walk.js";
import { resolveFinal, resolveWildcards } from "./wildcards.js";

/** A file's content hash, valid while its size, times and inode stay the same. */
export interface FileHashRecord {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly ino: number;
  readonly sha256: string;
}

/** Per-file hashes kept by the caller between checksums, keyed by host path. */
export type FileHashCache = Map<string, FileHashRecord>;

export interface ContentChecksumOptions {
  /** What to select inside the root, "/" by default; may hold wildcards unless `wildcard` is false. */
  readonly path?: string;
  /** Expand wildcards in `path` (default true), as a COPY with allowWildcard does. */
  readonly wildcard?: boolean;
  /** A wildcard matching nothing gives the empty selection's checksum instead of an error. */
  readonly allowEmptyWildcard?: boolean;
  /** Follow a symlink in the last component of `path` (default true, as COPY does). */
  readonly followSymlink?: boolean;
  readonly includePatterns?: readonly string[];
  readonly excludePatterns?: readonly string[];
  readonly fileHashCache?: FileHashCache;
  /**
   * The tree's files are replaced, never modified in place (the engine's synced context copies),
   * so a cached hash stays valid while inode, size and mtime do: the ctime moves whenever a COPY
   * hard-links the file into a snapshot, which says nothing about its content.
   */
  readonly filesReplacedNotModified?: boolean;
  /** Files hashed at once. */
  readonly concurrency?: number;
}

export class PathNotFoundError extends Error {
  constructor(readonly path: string) {
    super(`${JSON.stringify(path)}: not found`);
    this.name = "PathNotFoundError";
  }
}

/** Files up to this size are read whole; larger ones are streamed through the hash. */
const WHOLE_READ_LIMIT = 4 * 1024 * 1024;
const DEFAULT_CONCURRENCY = 32;

export async function contentChecksum(root: string, options: ContentChecksumOptions = {}): Promise<Digest> {
  const selector = cleanPath(`/${options.path ?? "/"}`);
  const followSymlink = options.followSymlink ?? true;
  const include = new PatternMatcher(options.includePatterns ?? []);
  const exclude = new PatternMatcher(options.excludePatterns ?? []);
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;

  const sources =
    (options.wildcard ?? true) ? await resolveWildcards(root, selector, followSymlink) : [selector];
  if (sources.length === 0 && !options.allowEmptyWildcard) throw new PathNotFoundError(selector);

  const total = createHash("sha256");
  total.update(`kiln content checksum v1\n${JSON.stringify(["selector", selector])}\n`);
  for (const source of sources) {
    const hostPath = await resolveFinal(root, source, followSymlink);
    let entries: TreeEntry[];
    try {
      entries = await walkTree(hostPath, { include, exclude });
    } catch (err) {
      if (isAbsentError(err)) throw new PathNotFoundError(cleanPath(`/${source}`));
      throw err;
    }
    const records = await entryRecords(entries, options, concurrency);
    total.update(`${JSON.stringify(["source", cleanPath(`/${source}`)])}\n`);
    for (const record of records) total.update(`${record}\n`);
  }
  return `sha256:${total.digest("hex")}` as Digest;
}

/** One line per entry, in walk order: [path, type, mode, uid, gid, content]. */
async function entryRecords(
  entries: readonly TreeEntry[],
  hashing: Pick<ContentChecksumOptions, "fileHashCache" | "filesReplacedNotModified">,
  concurrency: number,
): Promise<string[]> {
  const records: string[] = new Array(entries.length);
  const hardLinkLeaders = new Map<string, string>();
  entries.forEach((entry, i) => {
    const st = entry.stat;
    if (st.isFile() && st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      const leader = hardLinkLeaders.get(key);
      if (leader !== undefined) {
        records[i] = record(entry, "h", leader);
        return;
      }
      hardLinkLeaders.set(key, entry.rel);
    }
  });
  await forEachBounded(entries, concurrency, async (entry, i) => {
    if (records[i] !== undefined) return;
    const st = entry.stat;
    if (st.isFile()) records[i] = record(entry, "f", await fileSha256(entry.hostPath, st, hashing));
    else if (st.isDirectory()) records[i] = record(entry, "d", entry.selected ? "" : "parent");
    else if (st.isSymbolicLink()) records[i] = record(entry, "l", await readlink(entry.hostPath));
    else if (st.isFIFO()) records[i] = record(entry, "p", "");
    else if (st.isCharacterDevice() || st.isBlockDevice())
      records[i] = record(entry, st.isCharacterDevice() ? "c" : "b", String(st.rdev));
    else records[i] = record(entry, "s", "");
  });
  return records;
}

function record(entry: TreeEntry, type: string, content: string): string {
  const st = entry.stat;
  const mode = type === "l" ? 0o777 : st.mode & 0o7777;
  return JSON.stringify([entry.rel, type, mode, st.uid, st.gid, content]);
}

async function fileSha256(
  hostPath: string,
  st: Stats,
  hashing: Pick<ContentChecksumOptions, "fileHashCache" | "filesReplacedNotModified">,
): Promise<string> {
  const cache = hashing.fileHashCache;
  const cached = cache?.get(hostPath);
  if (
    cached &&
    cached.size === st.size &&
    cached.mtimeMs === st.mtimeMs &&
    (hashing.filesReplacedNotModified || cached.ctimeMs === st.ctimeMs) &&
    cached.ino === st.ino
  )
    return cached.sha256;
  const hash = createHash("sha256");
  if (st.size <= WHOLE_READ_LIMIT) hash.update(await readFile(hostPath));
  else for await (const chunk of createReadStream(hostPath)) hash.update(chunk as Buffer);
  const sha256 = hash.digest("hex");
  if (!cache) return sha256;
  // The file may have changed while it was read: only cache what still matches its stat.
  const after = await lstat(hostPath);
  if (after.size === st.size && after.mtimeMs === st.mtimeMs && after.ctimeMs === st.ctimeMs)
    cache.set(hostPath, { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, sha256 });
  return sha256;
}
