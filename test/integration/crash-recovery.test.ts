// Crash safety of the content store, metadata database and cache-key index: a writer process is
// killed with SIGKILL at random moments, and every reopen must find a consistent state.
// This file is also the writer: run with KILN_CRASH_WRITER_STATE=<dir>, it writes until killed.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes, randomInt } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, open, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CacheKeyIndex } from "../../src/cache/cache-key-index.js";
import { openCacheState } from "../../src/cache/cache-state.js";
import { GarbageCollector } from "../../src/cache/gc.js";
import { MetadataDb } from "../../src/cache/metadata-db.js";
import { DEFAULT_LEASE_TTL_MS, LeaseManager } from "../../src/content/leases.js";
import { FileContentStore } from "../../src/content/store.js";
import type { SnapshotId } from "../../src/snapshot/types.js";

const snapshotDir = (stateDir: string, id: string) => join(stateDir, "snapshots", id);

async function* chunksOf(data: Buffer, chunkSize: number): AsyncIterable<Buffer> {
  for (let i = 0; i < data.length; i += chunkSize) yield data.subarray(i, i + chunkSize);
}

function garbageCollector(db: MetadataDb, store: FileContentStore, stateDir: string): GarbageCollector {
  return new GarbageCollector({
    db,
    content: store,
    stateDir,
    removeSnapshot: (id) => rm(snapshotDir(stateDir, id), { recursive: true, force: true }),
    unreferencedBlobGraceMs: 0,
  });
}

/** The writer: per step, a layer blob, a snapshot holding the same bytes, and a cache record; GC now and then. */
async function runWriter(stateDir: string): Promise<never> {
  const store = await FileContentStore.open(stateDir);
  const db = MetadataDb.open(stateDir);
  const index = new CacheKeyIndex(db);
  const leases = new LeaseManager(db);
  const gc = garbageCollector(db, store, stateDir);
  for (let step = 0; ; step++) {
    await leases.withLease(async (lease) => {
      const data = randomBytes(randomInt(1, 768 * 1024));
      const blob = await store.write(chunksOf(data, 16 * 1024));
      lease.addBlob(blob.digest);
      const id = `snap-${process.pid}-${step}` as SnapshotId;
      await mkdir(snapshotDir(stateDir, id), { recursive: true });
      const fh = await open(join(snapshotDir(stateDir, id), "layer"), "w");
      await fh.writeFile(data);
      await fh.sync();
      await fh.close();
      db.snapshots.record({ id, kind: "committed", size: data.length, description: `step ${step}` });
      lease.addSnapshot(id);
      db.snapshots.linkBlob(id, blob.digest, blob.size);
      index.put(`key-${process.pid}-${step}`, { outputs: [{ snapshotId: id, layers: [blob] }] });
    });
    if (step % 4 === 3) await gc.prune({ keepStorage: 6 * 1024 * 1024 });
    process.stdout.write(`${step}\n`);
  }
}

const writerStateDir = process.env.KILN_CRASH_WRITER_STATE;
if (writerStateDir) {
  await runWriter(writerStateDir);
} else {
  describe("crash recovery (writer killed with SIGKILL)", function () {
    this.timeout(120_000);
    let stateDir: string;

    before(async () => {
      stateDir = await mkdtemp(join(tmpdir(), "kiln-crash-"));
    });
    after(async () => {
      await rm(stateDir, { recursive: true, force: true });
    });

    it("reopens to a consistent store and index after each of several kills at random moments", async () => {
      let recordsSeen = 0;
      for (let round = 0; round < 6; round++) {
        await runAndKill(stateDir, randomInt(2, 8), randomInt(0, 40));
        recordsSeen += await verifyReopen(stateDir);
      }
      assert.ok(recordsSeen > 0, "the writer recorded results before being killed");
    });
  });
}

/** Starts a writer, lets it finish `steps` steps, waits `delayMs` more, then kills it. */
async function runAndKill(stateDir: string, steps: number, delayMs: number): Promise<void> {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url)], {
    env: { ...process.env, KILN_CRASH_WRITER_STATE: stateDir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on("exit", (_code, signal) => resolve(signal)),
  );
  await new Promise<void>((resolve, reject) => {
    let lines = 0;
    child.stdout!.on("data", (d: Buffer) => {
      lines += d.toString().split("\n").length - 1;
      if (lines >= steps) resolve();
    });
    child.on("exit", (code) => reject(new Error(`writer exited early (code ${code}): ${stderr}`)));
  });
  await new Promise((r) => setTimeout(r, delayMs));
  child.kill("SIGKILL");
  assert.equal(await exited, "SIGKILL", `writer was not killed: ${stderr}`);
}

/** Reopens everything as the engine does at start and checks the invariants. Returns the record count. */
async function verifyReopen(stateDir: string): Promise<number> {
  // The writer's leases were meant for a running build; once they expire they must be gone.
  const state = await openCacheState({
    stateDir,
    snapshotExists: (id) => existsSync(snapshotDir(stateDir, id)),
    removeSnapshot: (id) => rm(snapshotDir(stateDir, id), { recursive: true, force: true }),
    now: () => Date.now() + DEFAULT_LEASE_TTL_MS + 1,
  });
  try {
    assert.deepEqual(await readdir(join(stateDir, "content", "ingest")), [], "no ingest leftovers");
    assert.deepEqual(state.db.checkIntegrity(), []);
    assert.deepEqual(state.db.leases.list(), []);
    assert.ok(state.db.snapshots.list().every((s) => !s.removing));

    const records = state.index.list();
    for (const record of records) {
      for (const output of record.outputs) {
        const layer = output.layers?.[0];
        assert.ok(layer, `record ${record.key} has its layer`);
        const blob = await state.content.readBytes(layer.digest);
        assert.equal(blob.length, layer.size);
        const snapshotBytes = await readFile(join(snapshotDir(stateDir, output.snapshotId), "layer"));
        assert.equal(`sha256:${createHash("sha256").update(snapshotBytes).digest("hex")}`, layer.digest);
      }
    }
    // No blob in the store is partial: every one hashes to its name.
    for await (const info of state.content.list()) await state.content.readBytes(info.digest);
    return records.length;
  } finally {
    state.close();
  }
}
