// The cache-key index: which committed snapshots (and layer blobs) a cache key's op produced.
// A record is only written once its snapshots are committed and recorded, in one transaction,
// so a crash can lose a record but never leave one pointing at nothing.
import type { Digest } from "../oci/digest.js";
import type { SnapshotId } from "../snapshot/types.js";
import type { CacheRecord, CacheResult } from "./metadata-cache-records.js";
import type { MetadataDb } from "./metadata-db.js";

export type { CachedLayer, CacheRecord, CacheResult, CacheResultOutput } from "./metadata-cache-records.js";

export interface CacheGetOptions {
  /** Adds the record's snapshots and layer blobs to this lease in the same transaction as the lookup,
   *  so garbage collection cannot take them between the hit and their use. */
  readonly lease?: string;
}

export interface RepairReport {
  /** Cache keys whose records were dropped because a snapshot or blob they name is gone. */
  readonly droppedRecords: string[];
  /** Snapshot records dropped because the snapshot (or an ancestor) is gone from the snapshotter. */
  readonly droppedSnapshots: SnapshotId[];
}

type Exists<T> = (x: T) => boolean | Promise<boolean>;

export class CacheKeyIndex {
  constructor(
    private readonly db: MetadataDb,
    private readonly now: () => number = Date.now,
  ) {}

  get(key: string, opts: CacheGetOptions = {}): CacheRecord | undefined {
    if (opts.lease === undefined) return this.db.cacheRecords.get(key);
    const lease = opts.lease;
    return this.db.transaction(() => {
      const expiresAt = this.db.leases.expiresAt(lease);
      if (expiresAt === undefined || expiresAt <= this.now()) {
        throw new Error(`lease ${lease} does not exist (released or expired); acquire a new lease`);
      }
      const record = this.db.cacheRecords.get(key);
      if (!record) return undefined;
      for (const output of record.outputs) {
        this.db.leases.addResource(lease, { kind: "snapshot", id: output.snapshotId });
        for (const layer of output.layers ?? [])
          this.db.leases.addResource(lease, { kind: "blob", digest: layer.digest });
      }
      return record;
    });
  }

  /**
   * Records `result` under `key`, replacing any earlier record. Every output's snapshot must already
   * be recorded as committed (`MetadataDb.snapshots.record`): the solver calls this last.
   */
  put(key: string, result: CacheResult): CacheRecord {
    if (key === "") throw new Error("cache key must not be empty");
    return this.db.transaction(() => {
      let size = 0;
      for (const output of result.outputs) {
        const snap = this.db.snapshots.get(output.snapshotId);
        if (snap?.kind !== "committed" || snap.removing) {
          const state = !snap ? "not recorded" : snap.removing ? "being removed" : "not committed";
          throw new Error(
            `cannot record cache key ${key}: snapshot ${output.snapshotId} is ${state}; ` +
              "commit and record the snapshot before recording the cache result",
          );
        }
        size += snap.size;
        // What `du` shows for the snapshot: the step that made it, as first recorded.
        if (!snap.description && result.description)
          this.db.snapshots.record({ ...snap, description: result.description });
      }
      this.db.cacheRecords.replace(key, result, size, this.now());
      return this.db.cacheRecords.get(key)!;
    });
  }

  /** Marks a cache hit. Returns false when there is no record for `key`. */
  touch(key: string): boolean {
    return this.db.cacheRecords.touch(key, this.now());
  }

  delete(key: string): boolean {
    return this.db.cacheRecords.delete(key);
  }

  /** All records, least recently used first. */
  list(): CacheRecord[] {
    return this.db.cacheRecords.list();
  }

  /**
   * Run at open: drops snapshot records whose snapshot (or an ancestor) the snapshotter no longer
   * has, and cache records that name a missing snapshot or a missing layer blob.
   */
  async repair(existsSnapshot: Exists<SnapshotId>, existsBlob: Exists<Digest>): Promise<RepairReport> {
    const snapshots = this.db.snapshots.list();
    const byId = new Map(snapshots.map((s) => [s.id, s]));
    const present = new Map<SnapshotId, boolean>();
    for (const s of snapshots) present.set(s.id, await existsSnapshot(s.id));
    const usable = (id: SnapshotId, seen = new Set<SnapshotId>()): boolean => {
      const s = byId.get(id);
      if (!s || seen.has(id) || !present.get(id)) return false;
      seen.add(id);
      return s.parent === undefined || usable(s.parent, seen);
    };
    const droppedSnapshots = snapshots.filter((s) => !usable(s.id)).map((s) => s.id);

    const blobPresent = new Map<Digest, boolean>();
    const droppedRecords: string[] = [];
    for (const record of this.db.cacheRecords.list()) {
      let ok = true;
      for (const output of record.outputs) {
        if (!usable(output.snapshotId) || byId.get(output.snapshotId)?.removing) ok = false;
        for (const layer of output.layers ?? []) {
          if (!ok) break;
          let has = blobPresent.get(layer.digest);
          if (has === undefined) blobPresent.set(layer.digest, (has = await existsBlob(layer.digest)));
          if (!has) ok = false;
        }
        if (!ok) break;
      }
      if (!ok) droppedRecords.push(record.key);
    }

    this.db.transaction(() => {
      for (const key of droppedRecords) this.db.cacheRecords.delete(key);
      for (const id of droppedSnapshots) this.db.snapshots.remove(id);
    });
    return { droppedRecords, droppedSnapshots };
  }
}
