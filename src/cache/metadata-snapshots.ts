// Snapshot records in the metadata database: what the engine knows about each snapshot (parent,
// size, use, description, record type) and which layer blobs belong to it.
import type BetterSqlite3 from "better-sqlite3";
import type { Digest } from "../oci/digest.js";
import type { SnapshotId } from "../snapshot/types.js";

/** BuildKit's usage record types; prune filters and the default GC policy select by them. */
export const RECORD_TYPES = [
  "internal",
  "frontend",
  "source.local",
  "source.git.checkout",
  "exec.cachemount",
  "regular",
] as const;
export type RecordType = (typeof RECORD_TYPES)[number];

export interface SnapshotRecord {
  readonly id: SnapshotId;
  readonly parent?: SnapshotId;
  readonly kind: "active" | "committed";
  /** Bytes the snapshot adds over its parent. */
  readonly size: number;
  readonly createdAt: number;
  readonly lastUsedAt?: number;
  readonly usageCount: number;
  readonly description: string;
  readonly recordType: RecordType;
  /** Garbage collection has started removing it; it is no longer usable. */
  readonly removing: boolean;
}

export interface SnapshotBlobLink {
  readonly digest: Digest;
  readonly size: number;
}

/** What the engine records about a snapshot; shaped to accept a `SnapshotInfo` as is. */
export interface SnapshotRecordInput {
  readonly id: SnapshotId;
  readonly parent?: SnapshotId;
  readonly kind: "active" | "committed";
  readonly size: number;
  readonly createdAt?: number;
  readonly description?: string;
  readonly recordType?: RecordType;
}

interface SnapshotRow {
  id: string;
  parent: string | null;
  kind: "active" | "committed";
  size: number;
  created_at: number;
  last_used_at: number | null;
  usage_count: number;
  description: string;
  record_type: string;
  removing: number;
}

export class SnapshotTable {
  private readonly upsertStmt;
  private readonly getStmt;
  private readonly listStmt;
  private readonly childrenStmt;
  private readonly touchStmt;
  private readonly removeStmt;
  private readonly markRemovingStmt;
  private readonly linkBlobStmt;
  private readonly blobsOfStmt;
  private readonly allBlobLinksStmt;

  constructor(private readonly db: BetterSqlite3.Database) {
    this.upsertStmt = db.prepare(
      `INSERT INTO snapshots (id, parent, kind, size, created_at, description, record_type)
       VALUES (@id, @parent, @kind, @size, @createdAt, @description, @recordType)
       ON CONFLICT (id) DO UPDATE SET
         parent = excluded.parent, kind = excluded.kind, size = excluded.size,
         description = CASE WHEN @descriptionGiven THEN excluded.description ELSE description END,
         record_type = CASE WHEN @recordTypeGiven THEN excluded.record_type ELSE record_type END`,
    );
    this.getStmt = db.prepare<[string], SnapshotRow>("SELECT * FROM snapshots WHERE id = ?");
    this.listStmt = db.prepare<[], SnapshotRow>("SELECT * FROM snapshots ORDER BY created_at, id");
    this.childrenStmt = db.prepare<[string], { id: string }>(
      "SELECT id FROM snapshots WHERE parent = ? ORDER BY id",
    );
    this.touchStmt = db.prepare(
      "UPDATE snapshots SET last_used_at = ?, usage_count = usage_count + 1 WHERE id = ? AND removing = 0",
    );
    this.removeStmt = db.prepare("DELETE FROM snapshots WHERE id = ?");
    this.markRemovingStmt = db.prepare("UPDATE snapshots SET removing = 1 WHERE id = ?");
    this.linkBlobStmt = db.prepare(
      `INSERT INTO snapshot_blobs (snapshot_id, digest, size) VALUES (?, ?, ?)
       ON CONFLICT (snapshot_id, digest) DO UPDATE SET size = excluded.size`,
    );
    this.blobsOfStmt = db.prepare<[string], { digest: string; size: number }>(
      "SELECT digest, size FROM snapshot_blobs WHERE snapshot_id = ? ORDER BY digest",
    );
    this.allBlobLinksStmt = db.prepare<[], { snapshot_id: string; digest: string; size: number }>(
      "SELECT snapshot_id, digest, size FROM snapshot_blobs",
    );
  }

  /**
   * Records a snapshot (or updates it: parent, kind and size follow the snapshotter; description
   * and record type only change when given). Use, creation time and blob links are kept.
   */
  record(input: SnapshotRecordInput, now = Date.now()): void {
    if (input.parent !== undefined && input.parent === input.id) {
      throw new Error(`snapshot ${input.id} cannot be its own parent`);
    }
    this.upsertStmt.run({
      id: input.id,
      parent: input.parent ?? null,
      kind: input.kind,
      size: input.size,
      createdAt: input.createdAt ?? now,
      description: input.description ?? "",
      recordType: input.recordType ?? "regular",
      descriptionGiven: input.description === undefined ? 0 : 1,
      recordTypeGiven: input.recordType === undefined ? 0 : 1,
    });
  }

  get(id: SnapshotId): SnapshotRecord | undefined {
    const row = this.getStmt.get(id);
    return row ? toRecord(row) : undefined;
  }

  list(): SnapshotRecord[] {
    return this.listStmt.all().map(toRecord);
  }

  children(id: SnapshotId): SnapshotId[] {
    return this.childrenStmt.all(id).map((r) => r.id as SnapshotId);
  }

  /** Marks a use (a cache hit, a mount); feeds least-recently-used collection. */
  touch(id: SnapshotId, now = Date.now()): void {
    this.touchStmt.run(now, id);
  }

  linkBlob(id: SnapshotId, digest: Digest, size: number): void {
    const result = this.db.transaction(() => {
      if (!this.getStmt.get(id)) return false;
      this.linkBlobStmt.run(id, digest, size);
      return true;
    })();
    if (!result)
      throw new Error(`cannot link blob ${digest} to snapshot ${id}: the snapshot is not recorded`);
  }

  blobsOf(id: SnapshotId): SnapshotBlobLink[] {
    return this.blobsOfStmt.all(id).map((r) => ({ digest: r.digest as Digest, size: r.size }));
  }

  /** Every snapshot → blob link, for usage accounting in one query. */
  allBlobLinks(): { snapshotId: SnapshotId; digest: Digest; size: number }[] {
    return this.allBlobLinksStmt
      .all()
      .map((r) => ({ snapshotId: r.snapshot_id as SnapshotId, digest: r.digest as Digest, size: r.size }));
  }

  markRemoving(id: SnapshotId): void {
    this.markRemovingStmt.run(id);
  }

  /** Forgets a snapshot with its blob links and any cache mount on it. */
  remove(id: SnapshotId): void {
    this.removeStmt.run(id);
  }
}

function toRecord(row: SnapshotRow): SnapshotRecord {
  return {
    id: row.id as SnapshotId,
    ...(row.parent !== null ? { parent: row.parent as SnapshotId } : {}),
    kind: row.kind,
    size: row.size,
    createdAt: row.created_at,
    ...(row.last_used_at !== null ? { lastUsedAt: row.last_used_at } : {}),
    usageCount: row.usage_count,
    description: row.description,
    recordType: (RECORD_TYPES as readonly string[]).includes(row.record_type)
      ? (row.record_type as RecordType)
      : "regular",
    removing: row.removing !== 0,
  };
}
