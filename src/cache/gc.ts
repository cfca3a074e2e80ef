// Garbage collection of build cache: disk usage per snapshot record, on-demand prune, and the
// policy-driven background collector. Records go least recently used first; a record goes with its
// cache keys, then its snapshot (through the engine's callback), then blobs nothing references.
import { stat } from "node:fs/promises";
import type { ContentStore } from "../content/types.js";
import type { Digest } from "../oci/digest.js";
import type { SnapshotId } from "../snapshot/types.js";
import {
  type DiskStat,
  defaultGcPolicy,
  diskSpaceBytes,
  diskStatOf,
  type GcRule,
  type GcSpaceConfig,
  keepBytesFor,
} from "./gc-policy.js";
import type { MetadataDb } from "./metadata-db.js";
import { parseUsageFilters, type UsageFilter, type UsageRecord } from "./usage-filter.js";

export type { UsageRecord } from "./usage-filter.js";

export interface GarbageCollectorOptions {
  readonly db: MetadataDb;
  readonly content: ContentStore;
  /** Deletes a snapshot's files. Must succeed quietly when the snapshot is already gone. */
  readonly removeSnapshot: (id: SnapshotId) => Promise<void>;
  /** A directory on the filesystem holding the state: percentages and free space refer to it. */
  readonly stateDir: string;
  /** The rules background collection applies in order; BuildKit's defaults when not given. */
  readonly policy?: readonly GcRule[];
  /** Space limits for the default policy (ignored when `policy` is given). */
  readonly space?: GcSpaceConfig;
  /**
   * Blobs nothing references are kept this long after they were written (default 1 h): a writer
   * that did not know the digest in advance could not lease the blob before it existed.
   */
  readonly unreferencedBlobGraceMs?: number;
  readonly now?: () => number;
}

export interface PruneOptions {
  /** Also remove internal and frontend records and shared ones. */
  readonly all?: boolean;
  /** Prune filters (see `parseUsageFilters`); `until=<duration>` sets `keepDurationMs`. */
  readonly filters?: readonly string[];
  /** Keep records used more recently than this. */
  readonly keepDurationMs?: number;
  /** Buildx's `--keep-storage`: the same as `maxUsedSpace`. */
  readonly keepStorage?: number;
  readonly reservedSpace?: number;
  readonly maxUsedSpace?: number;
  readonly minFreeSpace?: number;
  readonly signal?: AbortSignal;
}

export interface PruneResult {
  readonly removed: readonly UsageRecord[];
  /** Bytes of snapshots and blobs deleted. */
  readonly reclaimedBytes: number;
  readonly blobsRemoved: number;
}

interface Removal {
  readonly bytes: number;
  readonly blobs: number;
}

const PROTECTED_TYPES = new Set(["internal", "frontend"]);

export class GarbageCollector {
  private readonly db: MetadataDb;
  private readonly content: ContentStore;
  private readonly removeSnapshotFiles: (id: SnapshotId) => Promise<void>;
  private readonly stateDir: string;
  private readonly policy?: readonly GcRule[];
  private readonly space?: GcSpaceConfig;
  private readonly graceMs: number;
  private readonly now: () => number;
  /** Prunes run one at a time: the background collector and `kiln prune` must not interleave. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: GarbageCollectorOptions) {
    this.db = opts.db;
    this.content = opts.content;
    this.removeSnapshotFiles = opts.removeSnapshot;
    this.stateDir = opts.stateDir;
    this.policy = opts.policy;
    this.space = opts.space;
    this.graceMs = opts.unreferencedBlobGraceMs ?? 3600_000;
    this.now = opts.now ?? Date.now;
  }

  /** One record per snapshot, largest first, optionally filtered (`kiln du`). */
  diskUsage(opts: { readonly filters?: readonly string[] } = {}): UsageRecord[] {
    const filter = parseUsageFilters(opts.filters);
    return this.usage()
      .records.filter((r) => filter.matches(r))
      .sort((a, b) => b.size - a.size || a.id.localeCompare(b.id));
  }

  /** Bytes the build cache occupies: snapshots plus every blob in the content store. */
  async storageBytes(): Promise<number> {
    let total = 0;
    for (const s of this.db.snapshots.list()) if (!s.removing) total += s.size;
    for await (const blob of this.content.list()) total += blob.size;
    return total;
  }

  prune(opts: PruneOptions = {}): Promise<PruneResult> {
    return this.serialized(() => this.pruneNow(opts));
  }

  /** The rules `collect` applies, with their space limits in bytes for the disk as it is now. */
  async effectivePolicy(): Promise<{ rule: GcRule; keepBytes: number }[]> {
    const disk = await diskStatOf(this.stateDir);
    return (this.policy ?? defaultGcPolicy(disk, this.space)).map((rule) => ({
      rule,
      keepBytes: diskSpaceBytes(rule.maxUsedSpace, disk),
    }));
  }

  /** Applies the policy's rules in order (what the background collector does). */
  collect(signal?: AbortSignal): Promise<PruneResult> {
    return this.serialized(async () => {
      const disk = await diskStatOf(this.stateDir);
      const rules = this.policy ?? defaultGcPolicy(disk, this.space);
      const results: PruneResult[] = [];
      for (const rule of rules) results.push(await this.pruneNow(ruleToPrune(rule, disk, signal)));
      return {
        removed: results.flatMap((r) => r.removed),
        reclaimedBytes: results.reduce((n, r) => n + r.reclaimedBytes, 0),
        blobsRemoved: results.reduce((n, r) => n + r.blobsRemoved, 0),
      };
    });
  }

  /**
   * Runs `collect` every `intervalMs` until the returned function is called; that function
   * resolves once a collection in progress has finished. Errors go to `onError`.
   */
  startBackgroundGc(intervalMs: number, onError: (err: unknown) => void = () => {}): () => Promise<void> {
    if (!(intervalMs > 0))
      throw new RangeError(`gc interval must be a positive number of ms, got ${intervalMs}`);
    let stopped = false;
    let running: Promise<void> = Promise.resolve();
    const abort = new AbortController();
    let timer: NodeJS.Timeout;
    const schedule = () => {
      timer = setTimeout(tick, intervalMs);
      timer.unref();
    };
    const tick = () => {
      running = this.collect(abort.signal)
        .then(
          () => {},
          (err) => {
            if (!stopped) onError(err);
          },
        )
        .finally(() => {
          if (!stopped) schedule();
        });
    };
    schedule();
    return async () => {
      stopped = true;
      clearTimeout(timer);
      abort.abort();
      await running;
    };
  }

  /** Finishes removals a crash interrupted: snapshots whose cache records are gone but files may remain. */
  async finishInterruptedRemovals(): Promise<number> {
    let n = 0;
    for (const s of this.db.snapshots.list()) {
      if (!s.removing) continue;
      await this.removeFiles(s.id);
      this.db.transaction(() => this.db.snapshots.remove(s.id));
      n++;
    }
    return n;
  }

  private async pruneNow(opts: PruneOptions): Promise<PruneResult> {
    await this.finishInterruptedRemovals();
    this.db.leases.deleteExpired(this.now());
    const filter = parseUsageFilters(opts.filters);
    const keepDurationMs = opts.keepDurationMs ?? filter.keepDurationMs;

    const loose = await this.sweepUnreferencedBlobs();
    let reclaimedBytes = loose.bytes;
    let blobsRemoved = loose.blobs;

    const limits = {
      reservedSpace: opts.reservedSpace,
      maxUsedSpace: opts.maxUsedSpace ?? opts.keepStorage,
      minFreeSpace: opts.minFreeSpace,
    };
    let total = 0;
    let keep: number | undefined;
    if (limits.reservedSpace || limits.maxUsedSpace || limits.minFreeSpace) {
      total = await this.storageBytes();
      const free = limits.minFreeSpace ? (await diskStatOf(this.stateDir)).freeBytes : 0;
      keep = keepBytesFor(total, free, limits);
    }

    const removed: UsageRecord[] = [];
    for (;;) {
      opts.signal?.throwIfAborted();
      if (keep !== undefined && total <= keep) break;
      const candidates = this.candidates(opts.all ?? false, filter, keepDurationMs);
      if (candidates.length === 0) break;
      // Under a size cap, remove one record at a time so that no more goes than needed.
      const batch = keep !== undefined ? candidates.slice(0, 1) : candidates;
      let progressed = false;
      for (const record of batch) {
        opts.signal?.throwIfAborted();
        const removal = await this.removeRecord(record.id);
        if (!removal) continue;
        progressed = true;
        removed.push(record);
        reclaimedBytes += removal.bytes;
        blobsRemoved += removal.blobs;
        total -= removal.bytes;
      }
      if (!progressed) break;
    }
    return { removed, reclaimedBytes, blobsRemoved };
  }

  /** Records that may go now, least recently used first. */
  private candidates(all: boolean, filter: UsageFilter, keepDurationMs: number | undefined): UsageRecord[] {
    const { records, childCount } = this.usage();
    const cutoff = keepDurationMs ? this.now() - keepDurationMs : undefined;
    return records
      .filter((r) => {
        if (r.inUse || (childCount.get(r.id) ?? 0) > 0) return false;
        if (!all && (PROTECTED_TYPES.has(r.recordType) || r.shared)) return false;
        if (cutoff !== undefined && (r.lastUsedAt ?? r.createdAt) > cutoff) return false;
        return filter.matches(r);
      })
      .sort(
        (a, b) =>
          (a.lastUsedAt ?? a.createdAt) - (b.lastUsedAt ?? b.createdAt) || a.usageCount - b.usageCount,
      );
  }

  /**
   * Removes one snapshot record. The cache keys go and the snapshot is marked in one transaction
   * (re-checking that nothing took it meanwhile), then its files, then its row and freed blobs.
   */
  private async removeRecord(id: SnapshotId): Promise<Removal | undefined> {
    const claimed = this.db.transaction(() => {
      const snap = this.db.snapshots.get(id);
      if (!snap || snap.removing) return undefined;
      if (this.db.snapshots.children(id).length > 0) return undefined;
      if (this.db.leases.leasedSnapshots(this.now()).has(id)) return undefined;
      const blobs = new Set<Digest>(this.db.snapshots.blobsOf(id).map((b) => b.digest));
      for (const key of this.db.cacheRecords.keysReferencingSnapshot(id)) {
        for (const output of this.db.cacheRecords.get(key)?.outputs ?? []) {
          for (const layer of output.layers ?? []) blobs.add(layer.digest);
        }
        this.db.cacheRecords.delete(key);
      }
      this.db.snapshots.markRemoving(id);
      return { size: snap.size, blobs };
    });
    if (!claimed) return undefined;
    await this.removeFiles(id);
    this.db.transaction(() => this.db.snapshots.remove(id));
    let bytes = claimed.size;
    let blobs = 0;
    for (const digest of claimed.blobs) {
      const freed = await this.deleteBlobIfUnreferenced(digest);
      if (freed !== undefined) {
        bytes += freed;
        blobs++;
      }
    }
    return { bytes, blobs };
  }

  private async removeFiles(id: SnapshotId): Promise<void> {
    try {
      await this.removeSnapshotFiles(id);
    } catch (err) {
      throw new Error(
        `garbage collection could not remove snapshot ${id}: ${(err as Error).message}; ` +
          "it stays marked for removal and the next collection retries",
        { cause: err },
      );
    }
  }

  /** Deletes blobs no lease, snapshot or cache record references, once past the grace period. */
  private async sweepUnreferencedBlobs(): Promise<Removal> {
    const digests: Digest[] = [];
    for await (const blob of this.content.list()) digests.push(blob.digest);
    let bytes = 0;
    let blobs = 0;
    for (const digest of digests) {
      if (this.graceMs > 0) {
        const mtime = await stat(this.content.pathOf(digest)).then(
          (s) => s.mtimeMs,
          () => undefined,
        );
        if (mtime === undefined || mtime > this.now() - this.graceMs) continue;
      }
      const freed = await this.deleteBlobIfUnreferenced(digest);
      if (freed !== undefined) {
        bytes += freed;
        blobs++;
      }
    }
    return { bytes, blobs };
  }

  private async deleteBlobIfUnreferenced(digest: Digest): Promise<number | undefined> {
    const info = await this.content.info(digest);
    if (!info) return undefined;
    // Checked after the last await, right before the delete starts: a lease taken from here on
    // finds the blob gone and must fetch or rebuild it.
    if (this.referencedBlobs().has(digest)) return undefined;
    await this.content.delete(digest);
    return info.size;
  }

  private referencedBlobs(): Set<Digest> {
    const refs = this.db.leases.leasedBlobs(this.now());
    for (const link of this.db.snapshots.allBlobLinks()) refs.add(link.digest);
    for (const d of this.db.cacheRecords.layerDigests()) refs.add(d);
    return refs;
  }

  private usage(): { records: UsageRecord[]; childCount: Map<SnapshotId, number> } {
    const snapshots = this.db.snapshots.list().filter((s) => !s.removing);
    const childCount = new Map<SnapshotId, number>();
    for (const s of this.db.snapshots.list()) {
      if (s.parent !== undefined) childCount.set(s.parent, (childCount.get(s.parent) ?? 0) + 1);
    }
    const blobBytes = new Map<SnapshotId, number>();
    for (const link of this.db.snapshots.allBlobLinks()) {
      blobBytes.set(link.snapshotId, (blobBytes.get(link.snapshotId) ?? 0) + link.size);
    }
    const keys = new Map<SnapshotId, string[]>();
    for (const record of this.db.cacheRecords.list()) {
      for (const id of new Set(record.outputs.map((o) => o.snapshotId)))
        keys.set(id, [...(keys.get(id) ?? []), record.key]);
    }
    const leased = this.db.leases.leasedSnapshots(this.now());
    const records = snapshots.map((s): UsageRecord => {
      const cacheKeys = keys.get(s.id) ?? [];
      return {
        id: s.id,
        parents: s.parent !== undefined ? [s.parent] : [],
        recordType: s.recordType,
        description: s.description,
        size: s.size + (blobBytes.get(s.id) ?? 0),
        createdAt: s.createdAt,
        ...(s.lastUsedAt !== undefined ? { lastUsedAt: s.lastUsedAt } : {}),
        usageCount: s.usageCount,
        mutable: s.kind === "active",
        inUse: leased.has(s.id),
        shared: cacheKeys.length > 1 || (childCount.get(s.id) ?? 0) > 0,
        cacheKeys,
      };
    });
    return { records, childCount };
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }
}

function ruleToPrune(rule: GcRule, disk: DiskStat, signal: AbortSignal | undefined): PruneOptions {
  return {
    ...(rule.all ? { all: true } : {}),
    ...(rule.filters ? { filters: rule.filters } : {}),
    ...(rule.keepDurationMs ? { keepDurationMs: rule.keepDurationMs } : {}),
    reservedSpace: diskSpaceBytes(rule.reservedSpace, disk),
    maxUsedSpace: diskSpaceBytes(rule.maxUsedSpace, disk),
    minFreeSpace: diskSpaceBytes(rule.minFreeSpace, disk),
    ...(signal ? { signal } : {}),
  };
}
