import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CacheKeyIndex } from "../../../src/cache/cache-key-index.js";
import { MetadataDb } from "../../../src/cache/metadata-db.js";
import { LeaseManager } from "../../../src/content/leases.js";
import { sha256Digest } from "../../../src/oci/digest.js";
import type { SnapshotId } from "../../../src/snapshot/types.js";

const snap = (s: string) => s as SnapshotId;
const key = (s: string) => sha256Digest(`cache key ${s}`);

describe("CacheKeyIndex", () => {
  let stateDir: string;
  let db: MetadataDb;
  let clock: number;
  let index: CacheKeyIndex;

  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "kiln-index-"));
    db = MetadataDb.open(stateDir);
    clock = 1_000;
    index = new CacheKeyIndex(db, () => clock);
  });
  afterEach(async () => {
    db.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  const committed = (id: string, size = 100, parent?: string) =>
    db.snapshots.record({
      id: snap(id),
      kind: "committed",
      size,
      ...(parent ? { parent: snap(parent) } : {}),
    });

  it("returns what was put: each output's snapshot and known layers, with the summed size", () => {
    committed("s1", 100);
    committed("s2", 50);
    const layer = {
      digest: sha256Digest("gz"),
      diffId: sha256Digest("tar"),
      size: 7,
      mediaType: "application/x",
    };
    index.put(key("a"), {
      outputs: [{ snapshotId: snap("s1"), layers: [layer] }, { snapshotId: snap("s2") }],
    });
    const rec = index.get(key("a"))!;
    assert.deepEqual(rec.outputs, [{ snapshotId: "s1", layers: [layer] }, { snapshotId: "s2" }]);
    assert.equal(rec.size, 150);
    assert.equal(rec.createdAt, 1_000);
    assert.equal(rec.usageCount, 0);
  });

  it("describes a snapshot by the step that first recorded it, for du", () => {
    committed("s1", 100);
    index.put(key("a"), { outputs: [{ snapshotId: snap("s1") }], description: "[2/3] RUN make" });
    index.put(key("b"), { outputs: [{ snapshotId: snap("s1") }], description: "[stage 2/2] RUN make" });
    assert.equal(db.snapshots.get(snap("s1"))?.description, "[2/3] RUN make");
    assert.equal(db.snapshots.get(snap("s1"))?.size, 100);
  });

  it("returns undefined for a key that was never put", () => {
    assert.equal(index.get(key("missing")), undefined);
  });

  it("refuses a result whose snapshot is not recorded, not committed or being removed, and records nothing", () => {
    committed("ok");
    db.snapshots.record({ id: snap("active"), kind: "active", size: 0 });
    committed("going");
    db.snapshots.markRemoving(snap("going"));
    for (const [id, why] of [
      ["nowhere", /not recorded/],
      ["active", /not committed/],
      ["going", /being removed/],
    ] as const) {
      assert.throws(
        () => index.put(key(id), { outputs: [{ snapshotId: snap("ok") }, { snapshotId: snap(id) }] }),
        why,
      );
      assert.equal(index.get(key(id)), undefined);
    }
  });

  it("replaces an earlier record for the same key", () => {
    committed("old");
    committed("new");
    index.put(key("a"), { outputs: [{ snapshotId: snap("old") }] });
    index.put(key("a"), { outputs: [{ snapshotId: snap("new") }], description: "rebuilt" });
    assert.deepEqual(index.get(key("a"))?.outputs, [{ snapshotId: "new" }]);
    assert.equal(index.list().length, 1);
  });

  it("counts a touch as a use of the record and of its snapshots", () => {
    committed("s");
    index.put(key("a"), { outputs: [{ snapshotId: snap("s") }] });
    clock = 5_000;
    assert.equal(index.touch(key("a")), true);
    assert.equal(index.touch(key("nope")), false);
    const rec = index.get(key("a"))!;
    assert.equal(rec.lastUsedAt, 5_000);
    assert.equal(rec.usageCount, 1);
    assert.equal(db.snapshots.get(snap("s"))?.lastUsedAt, 5_000);
    assert.equal(db.snapshots.get(snap("s"))?.usageCount, 1);
  });

  it("lists records least recently used first and deletes by key", () => {
    committed("s");
    index.put(key("a"), { outputs: [{ snapshotId: snap("s") }] });
    clock = 2_000;
    index.put(key("b"), { outputs: [{ snapshotId: snap("s") }] });
    clock = 3_000;
    index.touch(key("a"));
    assert.deepEqual(
      index.list().map((r) => r.key),
      [key("b"), key("a")],
    );
    assert.equal(index.delete(key("b")), true);
    assert.equal(index.delete(key("b")), false);
    assert.deepEqual(
      index.list().map((r) => r.key),
      [key("a")],
    );
  });

  it("adds a hit's snapshots and blobs to a lease in the same lookup", () => {
    committed("s");
    const blob = sha256Digest("layer");
    index.put(key("a"), { outputs: [{ snapshotId: snap("s"), layers: [{ digest: blob, size: 3 }] }] });
    const leases = new LeaseManager(db, () => clock);
    const lease = leases.acquire();
    assert.ok(index.get(key("a"), { lease: lease.id }));
    assert.deepEqual(leases.get(lease.id)?.resources, [
      { kind: "blob", digest: blob },
      { kind: "snapshot", id: "s" },
    ]);
    assert.throws(() => index.get(key("a"), { lease: "no-such-lease" }), /does not exist/);
  });

  describe("repair", () => {
    it("keeps records whose snapshots and blobs all exist", async () => {
      committed("s");
      const blob = sha256Digest("b");
      index.put(key("a"), { outputs: [{ snapshotId: snap("s"), layers: [{ digest: blob, size: 1 }] }] });
      const report = await index.repair(
        async () => true,
        async () => true,
      );
      assert.deepEqual(report, { droppedRecords: [], droppedSnapshots: [] });
      assert.ok(index.get(key("a")));
    });

    it("drops records whose snapshot is gone, and the snapshot rows of it and its descendants", async () => {
      committed("base");
      committed("mid", 1, "base");
      committed("top", 1, "mid");
      committed("other");
      index.put(key("top"), { outputs: [{ snapshotId: snap("top") }] });
      index.put(key("other"), { outputs: [{ snapshotId: snap("other") }] });
      const report = await index.repair(
        (id) => id !== "mid",
        () => true,
      );
      assert.deepEqual(report.droppedRecords, [key("top")]);
      assert.deepEqual(report.droppedSnapshots.sort(), ["mid", "top"]);
      assert.equal(index.get(key("top")), undefined);
      assert.ok(index.get(key("other")));
      assert.ok(db.snapshots.get(snap("base")));
      assert.equal(db.snapshots.get(snap("top")), undefined);
    });

    it("drops records one of whose layer blobs is gone", async () => {
      committed("s");
      const kept = sha256Digest("kept");
      const lost = sha256Digest("lost");
      index.put(key("a"), { outputs: [{ snapshotId: snap("s"), layers: [{ digest: kept, size: 1 }] }] });
      index.put(key("b"), {
        outputs: [
          {
            snapshotId: snap("s"),
            layers: [
              { digest: kept, size: 1 },
              { digest: lost, size: 1 },
            ],
          },
        ],
      });
      const report = await index.repair(
        () => true,
        async (d) => d !== lost,
      );
      assert.deepEqual(report, { droppedRecords: [key("b")], droppedSnapshots: [] });
      assert.ok(index.get(key("a")));
    });

    it("drops records that name a snapshot the database never recorded", async () => {
      committed("s");
      index.put(key("a"), { outputs: [{ snapshotId: snap("s") }] });
      db.snapshots.remove(snap("s"));
      const report = await index.repair(
        () => true,
        () => true,
      );
      assert.deepEqual(report.droppedRecords, [key("a")]);
    });
  });
});
