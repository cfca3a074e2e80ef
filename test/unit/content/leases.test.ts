import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MetadataDb } from "../../../src/cache/metadata-db.js";
import { DEFAULT_LEASE_TTL_MS, LeaseManager } from "../../../src/content/leases.js";
import { sha256Digest } from "../../../src/oci/digest.js";
import type { SnapshotId } from "../../../src/snapshot/types.js";

describe("LeaseManager", () => {
  let stateDir: string;
  let db: MetadataDb;
  let clock: number;
  let leases: LeaseManager;

  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "kiln-leases-"));
    db = MetadataDb.open(stateDir);
    clock = 10_000;
    leases = new LeaseManager(db, () => clock);
  });
  afterEach(async () => {
    db.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  it("holds the blobs and snapshots added to a lease until it is released", () => {
    const lease = leases.acquire();
    const blob = sha256Digest("b");
    lease.addBlob(blob);
    lease.addSnapshot("s1" as SnapshotId);
    assert.deepEqual([...db.leases.leasedBlobs(clock)], [blob]);
    assert.deepEqual([...db.leases.leasedSnapshots(clock)], ["s1"]);
    lease.release();
    assert.equal(db.leases.leasedBlobs(clock).size, 0);
    assert.equal(db.leases.leasedSnapshots(clock).size, 0);
    assert.equal(leases.get(lease.id), undefined);
  });

  it("gives a new lease the default time to live", () => {
    const lease = leases.acquire();
    assert.equal(leases.get(lease.id)?.expiresAt, clock + DEFAULT_LEASE_TTL_MS);
  });

  it("releases the lease of withLease when the work succeeds and when it throws", async () => {
    let seen = "";
    assert.equal(
      await leases.withLease(async (lease) => {
        seen = lease.id;
        assert.ok(leases.get(lease.id));
        return 7;
      }),
      7,
    );
    assert.equal(leases.get(seen), undefined);
    await assert.rejects(
      leases.withLease(async (lease) => {
        seen = lease.id;
        throw new Error("build failed");
      }),
      /build failed/,
    );
    assert.equal(leases.get(seen), undefined);
    assert.deepEqual(leases.list(), []);
  });

  it("protects nothing once expired, and refuses new resources then", () => {
    const lease = leases.acquire({ ttlMs: 1000 });
    lease.addBlob(sha256Digest("x"));
    clock += 1000;
    assert.equal(db.leases.leasedBlobs(clock).size, 0);
    assert.throws(() => lease.addBlob(sha256Digest("y")), /expired; acquire a new lease/);
  });

  it("extends an expiry on renew", () => {
    const lease = leases.acquire({ ttlMs: 1000 });
    clock += 900;
    lease.renew(5000);
    assert.equal(leases.get(lease.id)?.expiresAt, clock + 5000);
    lease.release();
    assert.throws(() => lease.renew(), /released or expired/);
  });

  it("drops expired leases and keeps live ones", () => {
    leases.acquire({ id: "short", ttlMs: 100 });
    leases.acquire({ id: "long", ttlMs: 100_000 });
    clock += 500;
    assert.equal(leases.dropExpired(), 1);
    assert.deepEqual(
      leases.list().map((l) => l.id),
      ["long"],
    );
  });

  it("refuses a second lease with the same id and a non-positive ttl", () => {
    leases.acquire({ id: "build-1" });
    assert.throws(() => leases.acquire({ id: "build-1" }), /already exists/);
    assert.throws(() => leases.acquire({ ttlMs: 0 }), RangeError);
  });
});
