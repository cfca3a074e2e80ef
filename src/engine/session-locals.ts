// A build's local contexts as the worker sees them: synced from the session into engine-side
// copies keyed by the client's directory (so the next build sends only what changed), checksummed
// with per-file hashes cached across builds.
import { createHash } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { writeFileAtomically } from "../fs/atomic-write.js";
import { contentChecksum, type FileHashCache, type FileHashRecord } from "../fs/checksum.js";
import { acquireFileLock } from "../fs/file-lock.js";
import type { CopyAction } from "../llb/ops.js";
import { LocalAttr } from "../llb/source-attrs.js";
import type { Digest } from "../oci/digest.js";
import type { BuildSession } from "../session/types.js";
import { syncedCopyVersion } from "../source/local-sync.js";
import { copySourceChecksum } from "../worker/fileop/copy-checksum.js";
import type { LocalSources } from "../worker/op-worker.js";

/** How long a build waits for another process's build to finish with the same context copy. */
const COPY_LOCK_TIMEOUT_MS = 30 * 60_000;

/**
 * Serialises use of one engine-side copy: a build holds it from sync to its end. Builds of this
 * engine queue in memory; engines of other processes on the same state (two CLIs building with
 * the default builder at once) wait on a file lock beside the copy.
 */
export class LocalCopyLocks {
  private readonly tails = new Map<string, Promise<void>>();

  async acquire(dir: string): Promise<() => void> {
    const prev = this.tails.get(dir) ?? Promise.resolve();
    let releaseTurn!: () => void;
    const mine = new Promise<void>((r) => {
      releaseTurn = r;
    });
    this.tails.set(
      dir,
      prev.then(() => mine),
    );
    await prev;
    let releaseFile: () => void;
    try {
      await mkdir(dirname(dir), { recursive: true });
      releaseFile = await acquireFileLock(`${dir.replace(/\/+$/, "")}.lock`, {
        timeoutMs: COPY_LOCK_TIMEOUT_MS,
        holder: "another build of the same context",
      });
    } catch (err) {
      releaseTurn();
      throw err;
    }
    return () => {
      releaseFile();
      releaseTurn();
    };
  }
}

function jsonList(attrs: Readonly<Record<string, string>>, key: string): string[] {
  const v = attrs[key];
  if (!v) return [];
  const parsed = JSON.parse(v) as unknown;
  return Array.isArray(parsed) ? parsed.map(String) : [];
}

function hashFile(dir: string): string {
  return `${dir.replace(/\/+$/, "")}.hashes.json`;
}

function checksumMemoFile(dir: string): string {
  return `${dir.replace(/\/+$/, "")}.checksums.json`;
}

/**
 * Checksums already computed from one state of a synced copy, by what was asked. A no-op rebuild
 * of a large context then needs no walk of the copy at all.
 */
export interface ChecksumMemo {
  /** The copy's syncedCopyVersion these digests were computed from. */
  readonly version: string;
  readonly digests: Record<string, Digest>;
}

export class SessionLocalSources implements LocalSources {
  private readonly releases: (() => void)[] = [];
  private readonly used = new Set<string>();
  private readonly memosToSave = new Set<string>();

  constructor(
    private readonly session: BuildSession,
    private readonly localRoot: string,
    private readonly locks: LocalCopyLocks,
    private readonly hashCaches: Map<string, FileHashCache>,
    private readonly checksumMemos: Map<string, ChecksumMemo> = new Map(),
  ) {}

  async sync(name: string, attrs: Readonly<Record<string, string>>, signal: AbortSignal): Promise<string> {
    const include = [
      ...jsonList(attrs, LocalAttr.includePatterns),
      ...jsonList(attrs, LocalAttr.followPaths),
    ];
    const exclude = jsonList(attrs, LocalAttr.excludePatterns);
    // One copy per client directory and selection: builds selecting different paths don't thrash each other.
    const key = createHash("sha256")
      .update(`${this.session.sharedKey(name)}\0${JSON.stringify(include)}\0${JSON.stringify(exclude)}`)
      .digest("hex")
      .slice(0, 32);
    const dest = join(this.localRoot, key);
    this.releases.push(await this.locks.acquire(dest));
    await this.session.syncLocal(name, dest, { include, exclude }, signal);
    return dest;
  }

  /** Per-file hashes of a synced copy, kept on disk beside it so the next build (another process) reuses them. */
  private async cacheFor(dir: string): Promise<FileHashCache> {
    let cache = this.hashCaches.get(dir);
    if (!cache) {
      cache = new Map();
      try {
        const saved = JSON.parse(await readFile(hashFile(dir), "utf8")) as [string, FileHashRecord][];
        for (const [path, rec] of saved) cache.set(path, rec);
      } catch {
        // None yet, or unreadable: files are hashed again.
      }
      this.hashCaches.set(dir, cache);
    }
    this.used.add(dir);
    return cache;
  }

  /** The copies' files are only ever replaced by syncs (see local-sync.ts), never modified in place. */
  private async hashing(dir: string) {
    return { fileHashCache: await this.cacheFor(dir), filesReplacedNotModified: true };
  }

  async checksum(dir: string): Promise<Digest> {
    return this.memoised(dir, "/", async () =>
      contentChecksum(dir, { path: "/", ...(await this.hashing(dir)) }),
    );
  }

  async selectionChecksum(dir: string, action: CopyAction): Promise<Digest> {
    return this.memoised(dir, JSON.stringify(action), async () =>
      copySourceChecksum(action, dir, await this.hashing(dir)),
    );
  }

  private async memoised(dir: string, request: string, compute: () => Promise<Digest>): Promise<Digest> {
    const version = syncedCopyVersion(dir);
    if (version === undefined) return compute();
    let memo = this.checksumMemos.get(dir);
    if (!memo) {
      try {
        memo = JSON.parse(await readFile(checksumMemoFile(dir), "utf8")) as ChecksumMemo;
      } catch {
        // None yet, or unreadable: computed again.
      }
    }
    if (memo?.version !== version) memo = { version, digests: {} };
    this.checksumMemos.set(dir, memo);
    const known = memo.digests[request];
    if (known) return known;
    const digest = await compute();
    // The copy cannot change under us (this build holds its lock), so the digest belongs to `version`.
    memo.digests[request] = digest;
    this.memosToSave.add(dir);
    return digest;
  }

  /** Saves the hash caches this build used and lets other builds use the copies it synced. */
  async release(): Promise<void> {
    for (const dir of this.used) {
      const cache = this.hashCaches.get(dir);
      if (!cache) continue;
      await writeFileAtomically(hashFile(dir), JSON.stringify([...cache.entries()]));
    }
    this.used.clear();
    for (const dir of this.memosToSave) {
      const memo = this.checksumMemos.get(dir);
      if (!memo) continue;
      await writeFileAtomically(checksumMemoFile(dir), JSON.stringify(memo));
    }
    this.memosToSave.clear();
    for (const r of this.releases.splice(0)) r();
  }
}
