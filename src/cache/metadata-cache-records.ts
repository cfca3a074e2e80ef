// Cache records in the metadata database: cache key → the snapshots (and layer blobs, when known)
// of each output of the op that produced it, with the use that least-recently-used GC needs.
import type BetterSqlite3 from "better-sqlite3";
import type { Digest } from "../oci/digest.js";
import type { SnapshotId } from "../snapshot/types.js";

/** A layer blob of an output, known once the output has been exported or was pulled. */
export interface CachedLayer {
  readonly digest: Digest;
  /** The digest of the uncompressed layer tar. */
  readonly diffId?: Digest;
  readonly size: number;
  readonly mediaType?: string;
}

export interface CacheResultOutput {
  readonly snapshotId: SnapshotId;
  /** The layer chain of this output, base first, when known. */
  readonly layers?: readonly CachedLayer[];
}

export interface CacheResult {
  readonly outputs: readonly CacheResultOutput[];
  readonly description?: string;
}

export interface CacheRecord extends CacheResult {
  readonly key: string;
  readonly description: string;
  readonly createdAt: number;
  readonly lastUsedAt: number;
  readonly usageCount: number;
  /** Bytes of the outputs' snapshots when recorded. */
  readonly size: number;
}

interface RecordRow {
  key: string;
  created_at: number;
  last_used_at: number;
  usage_count: number;
  size: number;
  description: string;
}

interface OutputRow {
  key: string;
  output_index: number;
  snapshot_id: string;
}

interface LayerRow {
  key: string;
  output_index: number;
  layer_index: number;
  digest: string;
  diff_id: string | null;
  size: number;
  media_type: string | null;
}

export class CacheRecordTable {
  private readonly insertRecordStmt;
  private readonly insertOutputStmt;
  private readonly insertLayerStmt;
  private readonly deleteStmt;
  private readonly getRecordStmt;
  private readonly outputsOfStmt;
  private readonly layersOfStmt;
  private readonly listRecordsStmt;
  private readonly allOutputsStmt;
  private readonly allLayersStmt;
  private readonly touchStmt;
  private readonly touchSnapshotsStmt;
  private readonly keysBySnapshotStmt;
  private readonly keysByBlobStmt;
  private readonly layerDigestsStmt;

  constructor(private readonly db: BetterSqlite3.Database) {
    this.insertRecordStmt = db.prepare(
      `INSERT INTO cache_records (key, created_at, last_used_at, usage_count, size, description)
       VALUES (?, ?, ?, 0, ?, ?)`,
    );
    this.insertOutputStmt = db.prepare(
      "INSERT INTO cache_outputs (key, output_index, snapshot_id) VALUES (?, ?, ?)",
    );
    this.insertLayerStmt = db.prepare(
      `INSERT INTO cache_output_layers (key, output_index, layer_index, digest, diff_id, size, media_type)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    this.deleteStmt = db.prepare("DELETE FROM cache_records WHERE key = ?");
    this.getRecordStmt = db.prepare<[string], RecordRow>("SELECT * FROM cache_records WHERE key = ?");
    this.outputsOfStmt = db.prepare<[string], OutputRow>(
      "SELECT * FROM cache_outputs WHERE key = ? ORDER BY output_index",
    );
    this.layersOfStmt = db.prepare<[string], LayerRow>(
      "SELECT * FROM cache_output_layers WHERE key = ? ORDER BY output_index, layer_index",
    );
    this.listRecordsStmt = db.prepare<[], RecordRow>(
      "SELECT * FROM cache_records ORDER BY last_used_at, key",
    );
    this.allOutputsStmt = db.prepare<[], OutputRow>("SELECT * FROM cache_outputs ORDER BY key, output_index");
    this.allLayersStmt = db.prepare<[], LayerRow>(
      "SELECT * FROM cache_output_layers ORDER BY key, output_index, layer_index",
    );
    this.touchStmt = db.prepare(
      "UPDATE cache_records SET last_used_at = ?, usage_count = usage_count + 1 WHERE key = ?",
    );
    this.touchSnapshotsStmt = db.prepare(
      `UPDATE snapshots SET last_used_at = ?, usage_count = usage_count + 1
       WHERE id IN (SELECT snapshot_id FROM cache_outputs WHERE key = ?)`,
    );
    this.keysBySnapshotStmt = db.prepare<[string], { key: string }>(
      "SELECT DISTINCT key FROM cache_outputs WHERE snapshot_id = ? ORDER BY key",
    );
    this.keysByBlobStmt = db.prepare<[string], { key: string }>(
      "SELECT DISTINCT key FROM cache_output_layers WHERE digest = ? ORDER BY key",
    );
    this.layerDigestsStmt = db.prepare<[], { digest: string }>(
      "SELECT DISTINCT digest FROM cache_output_layers",
    );
  }

  /** Replaces the record for `key`; the caller runs this inside its transaction. */
  replace(key: string, result: CacheResult, size: number, now: number): void {
    this.deleteStmt.run(key);
    this.insertRecordStmt.run(key, now, now, size, result.description ?? "");
    result.outputs.forEach((output, i) => {
      this.insertOutputStmt.run(key, i, output.snapshotId);
      output.layers?.forEach((layer, j) => {
        this.insertLayerStmt.run(
          key,
          i,
          j,
          layer.digest,
          layer.diffId ?? null,
          layer.size,
          layer.mediaType ?? null,
        );
      });
    });
  }

  get(key: string): CacheRecord | undefined {
    const row = this.getRecordStmt.get(key);
    if (!row) return undefined;
    return assemble(row, this.outputsOfStmt.all(key), this.layersOfStmt.all(key));
  }

  /** All records, least recently used first. */
  list(): CacheRecord[] {
    const outputs = groupByKey(this.allOutputsStmt.all());
    const layers = groupByKey(this.allLayersStmt.all());
    return this.listRecordsStmt
      .all()
      .map((row) => assemble(row, outputs.get(row.key) ?? [], layers.get(row.key) ?? []));
  }

  /** Marks a cache hit on the record and on its outputs' snapshots. Returns false if there is no record. */
  touch(key: string, now: number): boolean {
    return this.db.transaction(() => {
      const changed = this.touchStmt.run(now, key).changes > 0;
      if (changed) this.touchSnapshotsStmt.run(now, key);
      return changed;
    })();
  }

  delete(key: string): boolean {
    return this.deleteStmt.run(key).changes > 0;
  }

  keysReferencingSnapshot(id: SnapshotId): string[] {
    return this.keysBySnapshotStmt.all(id).map((r) => r.key);
  }

  /** Every layer blob some cache record names. */
  layerDigests(): Set<Digest> {
    return new Set(this.layerDigestsStmt.all().map((r) => r.digest as Digest));
  }

  keysReferencingBlob(digest: Digest): string[] {
    return this.keysByBlobStmt.all(digest).map((r) => r.key);
  }
}

function groupByKey<T extends { key: string }>(rows: T[]): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const r of rows) {
    const list = m.get(r.key);
    if (list) list.push(r);
    else m.set(r.key, [r]);
  }
  return m;
}

function assemble(row: RecordRow, outputs: OutputRow[], layers: LayerRow[]): CacheRecord {
  return {
    key: row.key,
    description: row.description,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    usageCount: row.usage_count,
    size: row.size,
    outputs: outputs.map((o) => {
      const own = layers.filter((l) => l.output_index === o.output_index);
      return {
        snapshotId: o.snapshot_id as SnapshotId,
        ...(own.length > 0
          ? {
              layers: own.map((l) => ({
                digest: l.digest as Digest,
                ...(l.diff_id !== null ? { diffId: l.diff_id as Digest } : {}),
                size: l.size,
                ...(l.media_type !== null ? { mediaType: l.media_type } : {}),
              })),
            }
          : {}),
      };
    }),
  };
}
