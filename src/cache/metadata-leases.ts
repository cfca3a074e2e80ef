// Leases in the metadata database: named, expiring claims on blobs and snapshots that garbage
// collection must not take. An expired lease protects nothing, whether or not it was dropped yet.
import type BetterSqlite3 from "better-sqlite3";
import type { Digest } from "../oci/digest.js";
import type { SnapshotId } from "../snapshot/types.js";

export type LeaseResource =
  | { readonly kind: "blob"; readonly digest: Digest }
  | { readonly kind: "snapshot"; readonly id: SnapshotId };

export interface LeaseRecord {
  readonly id: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly resources: readonly LeaseResource[];
}

interface LeaseRow {
  id: string;
  created_at: number;
  expires_at: number;
}

interface ResourceRow {
  lease_id: string;
  kind: "blob" | "snapshot";
  ref: string;
}

export class LeaseTable {
  private readonly createStmt;
  private readonly getStmt;
  private readonly listStmt;
  private readonly resourcesOfStmt;
  private readonly deleteStmt;
  private readonly setExpiryStmt;
  private readonly addResourceStmt;
  private readonly removeResourceStmt;
  private readonly deleteExpiredStmt;
  private readonly liveRefsStmt;

  constructor(db: BetterSqlite3.Database) {
    this.createStmt = db.prepare("INSERT INTO leases (id, created_at, expires_at) VALUES (?, ?, ?)");
    this.getStmt = db.prepare<[string], LeaseRow>("SELECT * FROM leases WHERE id = ?");
    this.listStmt = db.prepare<[], LeaseRow>("SELECT * FROM leases ORDER BY created_at, id");
    this.resourcesOfStmt = db.prepare<[string], ResourceRow>(
      "SELECT * FROM lease_resources WHERE lease_id = ? ORDER BY kind, ref",
    );
    this.deleteStmt = db.prepare("DELETE FROM leases WHERE id = ?");
    this.setExpiryStmt = db.prepare("UPDATE leases SET expires_at = ? WHERE id = ?");
    this.addResourceStmt = db.prepare(
      "INSERT OR IGNORE INTO lease_resources (lease_id, kind, ref) VALUES (?, ?, ?)",
    );
    this.removeResourceStmt = db.prepare(
      "DELETE FROM lease_resources WHERE lease_id = ? AND kind = ? AND ref = ?",
    );
    this.deleteExpiredStmt = db.prepare("DELETE FROM leases WHERE expires_at <= ?");
    this.liveRefsStmt = db.prepare<[string, number], { ref: string }>(
      `SELECT DISTINCT r.ref FROM lease_resources r JOIN leases l ON l.id = r.lease_id
       WHERE r.kind = ? AND l.expires_at > ?`,
    );
  }

  create(id: string, createdAt: number, expiresAt: number): void {
    try {
      this.createStmt.run(id, createdAt, expiresAt);
    } catch (err) {
      if ((err as { code?: string }).code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
        throw new Error(`lease ${JSON.stringify(id)} already exists; choose another id or release it first`);
      }
      throw err;
    }
  }

  get(id: string): LeaseRecord | undefined {
    const row = this.getStmt.get(id);
    return row ? this.assemble(row) : undefined;
  }

  list(): LeaseRecord[] {
    return this.listStmt.all().map((row) => this.assemble(row));
  }

  /** When the lease expires, or undefined when there is no such lease. */
  expiresAt(id: string): number | undefined {
    return this.getStmt.get(id)?.expires_at;
  }

  delete(id: string): boolean {
    return this.deleteStmt.run(id).changes > 0;
  }

  setExpiry(id: string, expiresAt: number): boolean {
    return this.setExpiryStmt.run(expiresAt, id).changes > 0;
  }

  addResource(id: string, resource: LeaseResource): void {
    if (!this.getStmt.get(id))
      throw new Error(`lease ${JSON.stringify(id)} does not exist (released or expired)`);
    this.addResourceStmt.run(id, resource.kind, refOf(resource));
  }

  removeResource(id: string, resource: LeaseResource): void {
    this.removeResourceStmt.run(id, resource.kind, refOf(resource));
  }

  /** Drops leases that expired by `now` (left by a crashed or stuck holder). Returns how many. */
  deleteExpired(now: number): number {
    return this.deleteExpiredStmt.run(now).changes;
  }

  /** Blobs held by leases alive at `now`. */
  leasedBlobs(now: number): Set<Digest> {
    return new Set(this.liveRefsStmt.all("blob", now).map((r) => r.ref as Digest));
  }

  /** Snapshots held by leases alive at `now`. */
  leasedSnapshots(now: number): Set<SnapshotId> {
    return new Set(this.liveRefsStmt.all("snapshot", now).map((r) => r.ref as SnapshotId));
  }

  private assemble(row: LeaseRow): LeaseRecord {
    return {
      id: row.id,
      createdAt: row.created_at,
      expiresAt: row.expires_at,
      resources: this.resourcesOfStmt
        .all(row.id)
        .map((r) =>
          r.kind === "blob"
            ? { kind: "blob", digest: r.ref as Digest }
            : { kind: "snapshot", id: r.ref as SnapshotId },
        ),
    };
  }
}

function refOf(resource: LeaseResource): string {
  return resource.kind === "blob" ? resource.digest : resource.id;
}
