// Layer records in the metadata database: the blob each snapshot's diff became, and which
// snapshot holds each unpacked image layer chain.
import type BetterSqlite3 from "better-sqlite3";
import type { LayerRecord, LayerRecordStore } from "../exporter/layer-blobs.js";
import type { Digest } from "../oci/digest.js";
import type { SnapshotId } from "../snapshot/types.js";
import type { ChainSnapshotIndex } from "../source/image-unpack.js";

interface LayerRow {
  diff_id: string;
  digest: string;
  size: number;
  media_type: string;
  empty: number;
}

export class SnapshotLayerTable implements LayerRecordStore {
  private readonly getStmt;
  private readonly putStmt;
  private readonly linkStmt;

  constructor(db: BetterSqlite3.Database) {
    this.getStmt = db.prepare<[string], LayerRow>(
      "SELECT diff_id, digest, size, media_type, empty FROM snapshot_layers WHERE snapshot_id = ?",
    );
    this.putStmt = db.prepare(
      `INSERT INTO snapshot_layers (snapshot_id, diff_id, digest, size, media_type, empty) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (snapshot_id) DO UPDATE SET diff_id = excluded.diff_id, digest = excluded.digest,
         size = excluded.size, media_type = excluded.media_type, empty = excluded.empty`,
    );
    // The blob link makes garbage collection count the blob with the snapshot and keep it while the snapshot lives.
    this.linkStmt = db.prepare(
      "INSERT OR IGNORE INTO snapshot_blobs (snapshot_id, digest, size) VALUES (?, ?, ?)",
    );
  }

  async get(snapshot: SnapshotId): Promise<LayerRecord | undefined> {
    const row = this.getStmt.get(snapshot);
    if (!row) return undefined;
    return {
      diffId: row.diff_id as Digest,
      blob: { mediaType: row.media_type, digest: row.digest as Digest, size: row.size },
      empty: row.empty === 1,
    };
  }

  async put(snapshot: SnapshotId, record: LayerRecord): Promise<void> {
    this.putStmt.run(
      snapshot,
      record.diffId,
      record.blob.digest,
      record.blob.size,
      record.blob.mediaType,
      record.empty ? 1 : 0,
    );
    this.linkStmt.run(snapshot, record.blob.digest, record.blob.size);
  }
}

export class ChainSnapshotTable implements ChainSnapshotIndex {
  private readonly getStmt;
  private readonly putStmt;

  constructor(db: BetterSqlite3.Database) {
    this.getStmt = db.prepare<[string], { snapshot_id: string }>(
      "SELECT snapshot_id FROM chain_snapshots WHERE chain_id = ?",
    );
    this.putStmt = db.prepare("INSERT OR REPLACE INTO chain_snapshots (chain_id, snapshot_id) VALUES (?, ?)");
  }

  async get(chainId: Digest): Promise<SnapshotId | undefined> {
    return this.getStmt.get(chainId)?.snapshot_id as SnapshotId | undefined;
  }

  async put(chainId: Digest, snapshot: SnapshotId): Promise<void> {
    this.putStmt.run(chainId, snapshot);
  }
}
