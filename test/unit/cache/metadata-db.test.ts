import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { MetadataDb } from "../../../src/cache/metadata-db.js";
import { SCHEMA_VERSION } from "../../../src/cache/metadata-migrations.js";
import { sha256Digest } from "../../../src/oci/digest.js";
import type { SnapshotId } from "../../../src/snapshot/types.js";

const snap = (s: string) => s as SnapshotId;

describe("MetadataDb", () => {
  let stateDir: string;
  let db: MetadataDb;

  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "kiln-metadata-"));
    db = MetadataDb.open(stateDir);
  });
  afterEach(async () => {
    db.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  describe("opening", () => {
    it("creates <stateDir>/metadata.db in WAL mode at the current schema version", () => {
      assert.equal(db.path, join(stateDir, "metadata.db"));
      assert.equal(db.schemaVersion(), SCHEMA_VERSION);
      const raw = new Database(db.path, { readonly: true });
      try {
        assert.equal(raw.pragma("journal_mode", { simple: true }), "wal");
      } finally {
        raw.close();
      }
      assert.deepEqual(db.checkIntegrity(), []);
    });

    it("keeps its data across close and reopen", () => {
      db.snapshots.record({ id: snap("s1"), kind: "committed", size: 10 });
      db.close();
      db = MetadataDb.open(stateDir);
      assert.equal(db.snapshots.get(snap("s1"))?.size, 10);
      assert.equal(db.schemaVersion(), SCHEMA_VERSION);
    });

    it("refuses a database written by a newer schema, saying what to do", () => {
      db.close();
      const raw = new Database(join(stateDir, "metadata.db"));
      raw.pragma("user_version = 999");
      raw.close();
      assert.throws(() => MetadataDb.open(stateDir), /schema version 999, newer than .*upgrade Kiln/);
    });

    it("explains a damaged database file instead of failing obscurely", async () => {
      const other = join(stateDir, "broken");
      await mkdir(other);
      await writeFile(join(other, "metadata.db"), Buffer.alloc(8192, 0x41));
      assert.throws(() => MetadataDb.open(other), /metadata database .* is damaged .*remove it/);
    });

    it("drops leases that expired while no process held the database", () => {
      const t0 = 1_000_000;
      db.leases.create("old", t0, t0 + 1000);
      db.leases.create("live", t0, t0 + 10_000_000);
      db.close();
      db = MetadataDb.open(stateDir, { now: () => t0 + 5000 });
      assert.equal(db.expiredLeasesDropped, 1);
      assert.deepEqual(
        db.leases.list().map((l) => l.id),
        ["live"],
      );
    });
  });

  describe("snapshots", () => {
    it("records a snapshot and updates size and kind without losing its use history", () => {
      db.snapshots.record({ id: snap("a"), kind: "active", size: 0, description: "RUN make" }, 100);
      db.snapshots.touch(snap("a"), 200);
      db.snapshots.record({ id: snap("a"), kind: "committed", size: 42 }, 300);
      const rec = db.snapshots.get(snap("a"))!;
      assert.equal(rec.kind, "committed");
      assert.equal(rec.size, 42);
      assert.equal(rec.createdAt, 100);
      assert.equal(rec.lastUsedAt, 200);
      assert.equal(rec.usageCount, 1);
      assert.equal(rec.description, "RUN make");
      assert.equal(rec.recordType, "regular");
    });

    it("lists children of a snapshot", () => {
      db.snapshots.record({ id: snap("base"), kind: "committed", size: 1 });
      db.snapshots.record({ id: snap("c1"), parent: snap("base"), kind: "committed", size: 1 });
      db.snapshots.record({ id: snap("c2"), parent: snap("base"), kind: "active", size: 1 });
      assert.deepEqual(db.snapshots.children(snap("base")), ["c1", "c2"]);
    });

    it("links layer blobs to a recorded snapshot only, and forgets the links with the snapshot", () => {
      const d = sha256Digest("layer");
      assert.throws(() => db.snapshots.linkBlob(snap("nope"), d, 5), /not recorded/);
      db.snapshots.record({ id: snap("s"), kind: "committed", size: 1 });
      db.snapshots.linkBlob(snap("s"), d, 5);
      assert.deepEqual(db.snapshots.blobsOf(snap("s")), [{ digest: d, size: 5 }]);
      db.snapshots.remove(snap("s"));
      assert.deepEqual(db.snapshots.allBlobLinks(), []);
    });

    it("rejects a snapshot that names itself as parent", () => {
      assert.throws(() =>
        db.snapshots.record({ id: snap("x"), parent: snap("x"), kind: "committed", size: 0 }),
      );
    });
  });

  describe("image resolutions", () => {
    it("caches a digest per reference and normalised platform", () => {
      const d1 = sha256Digest("manifest arm64");
      const d2 = sha256Digest("manifest amd64");
      db.imageResolutions.put(
        "docker.io/library/alpine:3.20",
        { os: "linux", architecture: "aarch64" },
        d1,
        5,
      );
      db.imageResolutions.put("docker.io/library/alpine:3.20", { os: "linux", architecture: "amd64" }, d2, 6);
      const hit = db.imageResolutions.get("docker.io/library/alpine:3.20", {
        os: "linux",
        architecture: "arm64",
        variant: "v8",
      });
      assert.equal(hit?.digest, d1);
      assert.equal(hit?.resolvedAt, 5);
      assert.equal(db.imageResolutions.deleteResolvedBefore(6), 1);
      assert.equal(
        db.imageResolutions.get("docker.io/library/alpine:3.20", { os: "linux", architecture: "arm64" }),
        undefined,
      );
      assert.equal(
        db.imageResolutions.get("docker.io/library/alpine:3.20", { os: "linux", architecture: "amd64" })
          ?.digest,
        d2,
      );
    });
  });

  describe("cache mounts", () => {
    it("maps a cache mount id to a recorded snapshot with its sharing mode", () => {
      assert.throws(() => db.cacheMounts.put("go-build", snap("m1"), "shared"), /not recorded/);
      db.snapshots.record({ id: snap("m1"), kind: "active", size: 0, recordType: "exec.cachemount" });
      db.cacheMounts.put("go-build", snap("m1"), "locked", 10);
      assert.deepEqual(db.cacheMounts.get("go-build"), {
        id: "go-build",
        snapshotId: "m1",
        sharing: "locked",
        createdAt: 10,
        lastUsedAt: 10,
      });
    });

    it("forgets a cache mount when its snapshot is removed", () => {
      db.snapshots.record({ id: snap("m1"), kind: "active", size: 0, recordType: "exec.cachemount" });
      db.cacheMounts.put("apt", snap("m1"), "private");
      db.snapshots.remove(snap("m1"));
      assert.equal(db.cacheMounts.get("apt"), undefined);
      assert.deepEqual(db.checkIntegrity(), []);
    });
  });

  describe("transactions", () => {
    it("rolls back every write of a transaction that throws", () => {
      assert.throws(() =>
        db.transaction(() => {
          db.snapshots.record({ id: snap("t1"), kind: "committed", size: 1 });
          throw new Error("abort");
        }),
      );
      assert.equal(db.snapshots.get(snap("t1")), undefined);
    });

    it("sees writes made through another connection to the same file", () => {
      const other = MetadataDb.open(stateDir);
      try {
        other.snapshots.record({ id: snap("from-other"), kind: "committed", size: 3 });
        assert.equal(db.snapshots.get(snap("from-other"))?.size, 3);
      } finally {
        other.close();
      }
    });
  });
});
