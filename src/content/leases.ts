// Leases: what a build holds on to while it works. Blobs and snapshots added to a live lease are
// never garbage collected; a lease ends when released or when it expires (its holder crashed).
import { randomBytes } from "node:crypto";
import type { MetadataDb } from "../cache/metadata-db.js";
import type { LeaseRecord, LeaseResource } from "../cache/metadata-leases.js";
import type { Digest } from "../oci/digest.js";
import type { SnapshotId } from "../snapshot/types.js";

export type { LeaseRecord, LeaseResource } from "../cache/metadata-leases.js";

/** Long enough for any build step; a holder that crashes frees its resources after this. */
export const DEFAULT_LEASE_TTL_MS = 24 * 60 * 60 * 1000;

export interface LeaseOptions {
  /** Defaults to a random id. */
  readonly id?: string;
  readonly ttlMs?: number;
}

/** A held lease: add what the work creates or uses, release when done. */
export interface Lease {
  readonly id: string;
  addBlob(digest: Digest): void;
  addSnapshot(id: SnapshotId): void;
  /** Pushes the expiry to `ttlMs` from now (long-running work). */
  renew(ttlMs?: number): void;
  release(): void;
}

export class LeaseManager {
  constructor(
    private readonly db: MetadataDb,
    private readonly now: () => number = Date.now,
  ) {}

  acquire(opts: LeaseOptions = {}): Lease {
    const id = opts.id ?? `lease-${randomBytes(12).toString("hex")}`;
    const ttl = validTtl(opts.ttlMs ?? DEFAULT_LEASE_TTL_MS);
    const now = this.now();
    this.db.leases.create(id, now, now + ttl);
    return {
      id,
      addBlob: (digest) => this.add(id, { kind: "blob", digest }),
      addSnapshot: (snapshotId) => this.add(id, { kind: "snapshot", id: snapshotId }),
      renew: (ttlMs = ttl) => {
        if (!this.db.leases.setExpiry(id, this.now() + validTtl(ttlMs))) {
          throw new Error(`lease ${id} cannot be renewed: it was released or expired`);
        }
      },
      release: () => this.release(id),
    };
  }

  /** Ends a lease; what it held becomes collectable unless something else references it. */
  release(id: string): void {
    this.db.leases.delete(id);
  }

  /** Runs `fn` under a fresh lease and releases it afterwards, however `fn` ends. */
  async withLease<T>(fn: (lease: Lease) => Promise<T>, opts?: LeaseOptions): Promise<T> {
    const lease = this.acquire(opts);
    try {
      return await fn(lease);
    } finally {
      lease.release();
    }
  }

  get(id: string): LeaseRecord | undefined {
    return this.db.leases.get(id);
  }

  list(): LeaseRecord[] {
    return this.db.leases.list();
  }

  /** Drops leases past their expiry. Returns how many. */
  dropExpired(): number {
    return this.db.leases.deleteExpired(this.now());
  }

  private add(id: string, resource: LeaseResource): void {
    const expiresAt = this.db.leases.expiresAt(id);
    if (expiresAt === undefined || expiresAt <= this.now()) {
      // An expired lease protects nothing: adding to it would give a false sense of safety.
      throw new Error(`lease ${id} has been released or has expired; acquire a new lease`);
    }
    this.db.leases.addResource(id, resource);
  }
}

function validTtl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0)
    throw new RangeError(`lease ttl must be a positive number of ms, got ${ttlMs}`);
  return ttlMs;
}
