import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openCacheState } from "../../../src/cache/cache-state.js";
import type { SnapshotId } from "../../../src/snapshot/types.js";

describe("openCacheState", () => {
  let stateDir: string;
  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "kiln-state-"));
  });
  afterEach(async () => {
    await rm(stateDir, { recursive: true, force: true });
  });

  const dir = (id: string) => join(stateDir, "snapshots", id);
  const open = (now = Date.now) =>
    openCacheState({
      stateDir,
      snapshotExists: (id) => existsSync(dir(id)),
      removeSnapshot: (id) => rm(dir(id), { recursive: true, force: true }),
      now,
    });

  it("recovers from what a crash leaves: temp files, expired leases, half-done removals, dangling records", async () => {
    const first = await open();
    for (const id of ["kept", "lost", "half-removed"]) {
      await mkdir(dir(id), { recursive: true });
      first.db.snapshots.record({ id: id as SnapshotId, kind: "committed", size: 1 });
      first.index.put(`key-${id}`, { outputs: [{ snapshotId: id as SnapshotId }] });
    }
    const blob = await first.content.writeBytes("layer");
    first.leases.acquire({ ttlMs: 1000 }).addBlob(blob.digest);
    // As if garbage collection had claimed the snapshot and then the process died:
    first.db.transaction(() => {
      first.index.delete("key-half-removed");
      first.db.snapshots.markRemoving("half-removed" as SnapshotId);
    });
    first.close();
    await rm(dir("lost"), { recursive: true });
    await writeFile(join(stateDir, "content", "ingest", "999999999.partial"), "half a blob");

    const state = await open(() => Date.now() + 2000);
    try {
      assert.deepEqual(state.recovery, {
        droppedRecords: ["key-lost"],
        droppedSnapshots: ["lost"],
        interruptedRemovalsFinished: 1,
        expiredLeasesDropped: 1,
      });
      assert.deepEqual(await readdir(join(stateDir, "content", "ingest")), []);
      assert.equal(existsSync(dir("half-removed")), false);
      assert.deepEqual(
        state.index.list().map((r) => r.key),
        ["key-kept"],
      );
      assert.equal(await state.content.has(blob.digest), true, "the blob itself stays until GC");
    } finally {
      state.close();
    }
  });
});
