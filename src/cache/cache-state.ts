// Opening the engine's cache state in the order crash recovery needs: content store (drops
// half-written blobs), metadata database (drops expired leases), interrupted GC removals, then
// the repair of cache records that name snapshots or blobs no longer there.
import { LeaseManager } from "../content/leases.js";
import { FileContentStore } from "../content/store.js";
import type { SnapshotId } from "../snapshot/types.js";
import { CacheKeyIndex, type RepairReport } from "./cache-key-index.js";
import { GarbageCollector, type GarbageCollectorOptions } from "./gc.js";
import { MetadataDb } from "./metadata-db.js";

export interface CacheStateOptions {
  readonly stateDir: string;
  /** Whether the snapshotter still has this snapshot. */
  readonly snapshotExists: (id: SnapshotId) => boolean | Promise<boolean>;
  /** Deletes a snapshot's files; must succeed quietly when it is already gone. */
  readonly removeSnapshot: (id: SnapshotId) => Promise<void>;
  /** Garbage collection settings beyond the ones above. */
  readonly gc?: Pick<GarbageCollectorOptions, "policy" | "space" | "unreferencedBlobGraceMs">;
  readonly now?: () => number;
}

export interface CacheState {
  readonly content: FileContentStore;
  readonly db: MetadataDb;
  readonly index: CacheKeyIndex;
  readonly leases: LeaseManager;
  readonly gc: GarbageCollector;
  /** What recovery found at open. */
  readonly recovery: RepairReport & {
    readonly interruptedRemovalsFinished: number;
    readonly expiredLeasesDropped: number;
  };
  close(): void;
}

export async function openCacheState(opts: CacheStateOptions): Promise<CacheState> {
  const now = opts.now ?? Date.now;
  const content = await FileContentStore.open(opts.stateDir);
  const db = MetadataDb.open(opts.stateDir, { now });
  try {
    const index = new CacheKeyIndex(db, now);
    const leases = new LeaseManager(db, now);
    const gc = new GarbageCollector({
      ...opts.gc,
      db,
      content,
      removeSnapshot: opts.removeSnapshot,
      stateDir: opts.stateDir,
      now,
    });
    const interruptedRemovalsFinished = await gc.finishInterruptedRemovals();
    const repair = await index.repair(opts.snapshotExists, (digest) => content.has(digest));
    return {
      content,
      db,
      index,
      leases,
      gc,
      recovery: { ...repair, interruptedRemovalsFinished, expiredLeasesDropped: db.expiredLeasesDropped },
      close: () => db.close(),
    };
  } catch (err) {
    db.close();
    throw err;
  }
}
