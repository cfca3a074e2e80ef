import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CacheKeyIndex } from "../../../src/cache/cache-key-index.js";
import { GarbageCollector, type GarbageCollectorOptions } from "../../../src/cache/gc.js";
import { MetadataDb } from "../../../src/cache/metadata-db.js";
import type { RecordType } from "../../../src/cache/metadata-snapshots.js";
import { LeaseManager } from "../../../src/content/leases.js";
import { FileContentStore } from "../../../src/content/store.js";
import type { Digest } from "../../../src/oci/digest.js";
import type { SnapshotId } from "../../../src/snapshot/types.js";

const HOUR = 3600_000;

describe("GarbageCollector", () => {
  let stateDir: string;
  let db: MetadataDb;
  let store: FileContentStore;
  let index: CacheKeyIndex;
  let leases: LeaseManager;
  let clock: number;
  let removedSnapshots: SnapshotId[];

  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "kiln-gc-"));
    db = MetadataDb.open(stateDir);
    store = await FileContentStore.open(stateDir);
    clock = Date.now();
    index = new CacheKeyIndex(db, () => clock);
    leases = new LeaseManager(db, () => clock);
    removedSnapshots = [];
  });
  afterEach(async () => {
    db.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  const snapshotDir = (id: string) => join(stateDir, "snapshots", id);

  /** A real directory stands in for the snapshot's files; the collector removes it through the callback. */
  function collector(over: Partial<GarbageCollectorOptions> = {}): GarbageCollector {
    return new GarbageCollector({
      db,
      content: store,
      stateDir,
      removeSnapshot: async (id) => {
        removedSnapshots.push(id);
        await rm(snapshotDir(id), { recursive: true, force: true });
      },
      unreferencedBlobGraceMs: 0,
      now: () => clock,
      ...over,
    });
  }

  async function snapshot(
    id: string,
    size: number,
    opts: { parent?: string; recordType?: RecordType; kind?: "active" | "committed"; at?: number } = {},
  ): Promise<SnapshotId> {
    await mkdir(snapshotDir(id), { recursive: true });
    await writeFile(join(snapshotDir(id), "data"), Buffer.alloc(size));
    db.snapshots.record(
      {
        id: id as SnapshotId,
        kind: opts.kind ?? "committed",
        size,
        description: `snapshot ${id}`,
        ...(opts.parent ? { parent: opts.parent as SnapshotId } : {}),
        ...(opts.recordType ? { recordType: opts.recordType } : {}),
      },
      opts.at ?? clock,
    );
    return id as SnapshotId;
  }

  /** A cache record for `snap` with one layer blob of `blobSize` bytes. */
  async function cached(key: string, snap: SnapshotId, blobSize = 0): Promise<Digest | undefined> {
    let layers: { digest: Digest; size: number }[] = [];
    if (blobSize > 0) {
      const blob = await store.writeBytes(Buffer.alloc(blobSize, key));
      layers = [blob];
    }
    index.put(key, { outputs: [{ snapshotId: snap, layers }] });
    return layers[0]?.digest;
  }

  describe("diskUsage", () => {
    it("lists each snapshot with its size, use, state and sharing", async () => {
      const base = await snapshot("base", 1000);
      const app = await snapshot("app", 200, { parent: "base" });
      const mount = await snapshot("mount", 50, { kind: "active", recordType: "exec.cachemount" });
      db.snapshots.linkBlob(app, (await store.writeBytes(Buffer.alloc(30))).digest, 30);
      await cached("k1", app);
      await cached("k2", base);
      await cached("k3", base);
      clock += 10;
      index.touch("k1");
      leases.acquire().addSnapshot(mount);

      const du = collector().diskUsage();
      assert.deepEqual(
        du.map((r) => r.id),
        ["base", "app", "mount"],
      );
      const [b, a, m] = du;
      assert.equal(b!.shared, true, "a parent (and twice cached) is shared");
      assert.deepEqual(b!.cacheKeys, ["k2", "k3"]);
      assert.equal(a!.size, 230, "snapshot bytes plus its layer blob");
      assert.equal(a!.shared, false);
      assert.deepEqual(a!.parents, ["base"]);
      assert.equal(a!.usageCount, 1);
      assert.equal(a!.lastUsedAt, clock);
      assert.equal(a!.description, "snapshot app");
      assert.equal(m!.inUse, true);
      assert.equal(m!.mutable, true);
      assert.equal(m!.recordType, "exec.cachemount");
    });

    it("applies filters", async () => {
      await snapshot("a", 1);
      await snapshot("m", 1, { recordType: "exec.cachemount" });
      assert.deepEqual(
        collector()
          .diskUsage({ filters: ["type=exec.cachemount"] })
          .map((r) => r.id),
        ["m"],
      );
    });
  });

  describe("prune", () => {
    it("removes unused records with their cache keys, snapshot files and layer blobs", async () => {
      const s = await snapshot("s", 100);
      const blob = (await cached("k", s, 64))!;
      const result = await collector().prune();
      assert.deepEqual(
        result.removed.map((r) => r.id),
        ["s"],
      );
      assert.equal(result.reclaimedBytes, 164);
      assert.equal(result.blobsRemoved, 1);
      assert.equal(index.get("k"), undefined);
      assert.equal(db.snapshots.get(s), undefined);
      assert.equal(existsSync(snapshotDir("s")), false);
      assert.equal(await store.has(blob), false);
    });

    it("keeps snapshots and blobs that a live lease holds", async () => {
      const held = await snapshot("held", 10);
      const free = await snapshot("free", 10);
      const heldBlob = (await cached("kh", held, 8))!;
      await cached("kf", free, 9);
      const lease = leases.acquire();
      lease.addSnapshot(held);
      lease.addBlob(heldBlob);
      index.delete("kh");
      await collector().prune({ all: true });
      assert.ok(db.snapshots.get(held));
      assert.ok(existsSync(snapshotDir("held")));
      assert.equal(await store.has(heldBlob), true);
      assert.equal(db.snapshots.get(free), undefined);

      lease.release();
      await collector().prune({ all: true });
      assert.equal(db.snapshots.get(held), undefined);
      assert.equal(await store.has(heldBlob), false);
    });

    it("keeps internal records unless asked for all, and removes chains child first", async () => {
      await snapshot("base", 10);
      await snapshot("child", 10, { parent: "base" });
      await snapshot("frontend", 10, { recordType: "frontend" });
      await snapshot("child2", 10, { parent: "frontend" });
      const first = await collector().prune();
      assert.deepEqual(
        first.removed.map((r) => r.id),
        ["child", "child2", "base"],
        "a parent goes once its children are gone",
      );
      assert.ok(db.snapshots.get("frontend" as SnapshotId));

      const all = await collector().prune({ all: true });
      assert.deepEqual(
        all.removed.map((r) => r.id),
        ["frontend"],
      );
      assert.deepEqual(db.snapshots.list(), []);
      assert.deepEqual(removedSnapshots, ["child", "child2", "base", "frontend"]);
    });

    it("keeps a record that several cache keys share unless asked for all", async () => {
      const s = await snapshot("s", 10);
      await cached("k1", s);
      await cached("k2", s);
      assert.deepEqual((await collector().prune()).removed, []);
      assert.deepEqual(
        (await collector().prune({ all: true })).removed.map((r) => r.id),
        ["s"],
      );
      assert.deepEqual(index.list(), []);
    });

    it("under a storage cap, removes least recently used records first and stops once under it", async () => {
      for (const [i, id] of ["old", "mid", "new"].entries()) {
        await snapshot(id, 1000, { at: clock + i });
        await cached(`k-${id}`, id as SnapshotId);
      }
      clock += 100;
      index.touch("k-old"); // now the most recently used
      const result = await collector().prune({ keepStorage: 1500 });
      assert.deepEqual(
        result.removed.map((r) => r.id),
        ["mid", "new"],
      );
      assert.deepEqual(
        db.snapshots.list().map((s) => s.id),
        ["old"],
      );
      assert.ok(index.get("k-old"));
    });

    it("keeps records used within the until= duration", async () => {
      await snapshot("stale", 10, { at: clock - 48 * HOUR });
      await snapshot("recent", 10, { at: clock - HOUR });
      const result = await collector().prune({ filters: ["until=24h"] });
      assert.deepEqual(
        result.removed.map((r) => r.id),
        ["stale"],
      );
    });

    it("removes only records matching a type filter, and forgets a removed cache mount", async () => {
      const m = await snapshot("m", 10, { kind: "active", recordType: "exec.cachemount" });
      db.cacheMounts.put("go-build", m, "shared");
      await snapshot("r", 10);
      const result = await collector().prune({ filters: ["type==exec.cachemount"] });
      assert.deepEqual(
        result.removed.map((r) => r.id),
        ["m"],
      );
      assert.equal(db.cacheMounts.get("go-build"), undefined);
      assert.ok(db.snapshots.get("r" as SnapshotId));
    });

    it("deletes unreferenced blobs once their grace period has passed, and not before", async () => {
      const old = await store.writeBytes("old loose blob");
      const fresh = await store.writeBytes("fresh loose blob");
      const leased = await store.writeBytes("leased blob");
      leases.acquire().addBlob(leased.digest);
      const twoHoursAgo = new Date(Date.now() - 2 * HOUR);
      await utimes(store.pathOf(old.digest), twoHoursAgo, twoHoursAgo);
      await utimes(store.pathOf(leased.digest), twoHoursAgo, twoHoursAgo);
      const result = await collector({ unreferencedBlobGraceMs: HOUR }).prune();
      assert.equal(result.blobsRemoved, 1);
      assert.equal(await store.has(old.digest), false);
      assert.equal(await store.has(fresh.digest), true);
      assert.equal(await store.has(leased.digest), true);
    });

    it("keeps a blob another cache record still names when one record goes", async () => {
      const a = await snapshot("a", 10);
      await snapshot("b", 10);
      const blob = (await cached("ka", a, 16))!;
      index.put("kb", { outputs: [{ snapshotId: "b" as SnapshotId, layers: [{ digest: blob, size: 16 }] }] });
      await collector().prune({ filters: ["id==a"] });
      assert.equal(await store.has(blob), true);
      assert.ok(index.get("kb"));
    });

    it("leaves a snapshot whose removal failed marked, without cache records, and finishes it next time", async () => {
      const s = await snapshot("s", 10);
      await cached("k", s);
      let failing = true;
      const gc = collector({
        removeSnapshot: async (id) => {
          if (failing) throw new Error("device or resource busy");
          await rm(snapshotDir(id), { recursive: true, force: true });
        },
      });
      await assert.rejects(gc.prune(), /could not remove snapshot s: device or resource busy; .*retries/);
      assert.equal(index.get("k"), undefined);
      assert.equal(db.snapshots.get(s)?.removing, true);
      assert.deepEqual(gc.diskUsage(), []);
      failing = false;
      await gc.prune();
      assert.equal(db.snapshots.get(s), undefined);
      assert.equal(existsSync(snapshotDir("s")), false);
    });

    it("runs concurrent prunes one after the other, removing each snapshot once", async () => {
      for (let i = 0; i < 5; i++) await snapshot(`s${i}`, 10);
      const gc = collector();
      const results = await Promise.all([gc.prune(), gc.prune(), gc.prune()]);
      assert.equal(results.flatMap((r) => r.removed).length, 5);
      assert.equal(new Set(removedSnapshots).size, removedSnapshots.length);
    });

    it("stops when its signal aborts", async () => {
      await snapshot("s", 10);
      const ac = new AbortController();
      ac.abort();
      await assert.rejects(collector().prune({ signal: ac.signal }), { name: "AbortError" });
      assert.ok(db.snapshots.get("s" as SnapshotId));
    });
  });

  describe("policy", () => {
    it("applies the rules in order: a filtered rule first, then the size cap", async () => {
      await snapshot("mount", 100, { kind: "active", recordType: "exec.cachemount", at: clock - 72 * HOUR });
      await snapshot("old", 100, { at: clock - 72 * HOUR });
      await snapshot("new", 100);
      const gc = collector({
        policy: [
          { filters: ["type==exec.cachemount"], keepDurationMs: 48 * HOUR },
          { maxUsedSpace: { bytes: 150 } },
        ],
      });
      const result = await gc.collect();
      assert.deepEqual(
        result.removed.map((r) => r.id),
        ["mount", "old"],
      );
      assert.equal(result.reclaimedBytes, 200);
    });

    it("collects in the background until stopped", async () => {
      const gc = collector({ policy: [{ all: true }] });
      await snapshot("a", 10);
      const stop = gc.startBackgroundGc(10);
      for (let i = 0; i < 200 && db.snapshots.get("a" as SnapshotId); i++)
        await new Promise((r) => setTimeout(r, 5));
      assert.equal(db.snapshots.get("a" as SnapshotId), undefined);
      await stop();
      await snapshot("b", 10);
      await new Promise((r) => setTimeout(r, 60));
      assert.ok(db.snapshots.get("b" as SnapshotId), "no collection runs after stop");
    });

    it("reports background errors to its handler and keeps running", async () => {
      const errors: unknown[] = [];
      let failures = 2;
      const gc = collector({
        policy: [{ all: true }],
        removeSnapshot: async (id) => {
          if (failures-- > 0) throw new Error("busy");
          await rm(snapshotDir(id), { recursive: true, force: true });
        },
      });
      await snapshot("a", 10);
      const stop = gc.startBackgroundGc(5, (err) => errors.push(err));
      for (let i = 0; i < 200 && db.snapshots.get("a" as SnapshotId); i++)
        await new Promise((r) => setTimeout(r, 5));
      await stop();
      assert.equal(errors.length, 2);
      assert.equal(db.snapshots.get("a" as SnapshotId), undefined);
    });
  });
});
