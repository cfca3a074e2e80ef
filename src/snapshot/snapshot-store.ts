// Snapshots as directories under one root, each with a small JSON record (parent, kind, created,
// size) written atomically. A snapshot appears under its id only once complete: it is built in
// tmp/ and renamed into place, and removed by renaming it back out first, so a crash never leaves
// a half-made or half-deleted snapshot looking valid.
import { randomBytes } from "node:crypto";
import { closeSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import { lstat, mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomically } from "../fs/atomic-write.js";
import type { SnapshotId, SnapshotInfo } from "./types.js";

const ID_PATTERN = /^[0-9a-f]{12}$/;
const RECORD_FILE = "snapshot.json";

export class UnknownSnapshotError extends Error {
  constructor(readonly id: string) {
    super(`no snapshot ${JSON.stringify(id)}`);
    this.name = "UnknownSnapshotError";
  }
}

/** Records are read back after a crash: on disk before they count. */
const RECORD_WRITE = { mode: 0o644, durable: true } as const;

function isAbsent(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === "ENOENT";
}

/** What one pass over the root found: complete snapshots, and directories that are not (strays). */
interface Scan {
  readonly records: Map<SnapshotId, SnapshotInfo>;
  readonly strays: string[];
}

export class SnapshotStore {
  private records: Map<SnapshotId, SnapshotInfo> | undefined;
  /** Strays seen by the scan that filled `records`; undefined once the records were forgotten. */
  private scannedStrays: string[] | undefined;

  constructor(readonly root: string) {
    if (/[,:]/.test(root)) {
      // Overlay mount options separate paths with ":" and options with ",".
      throw new Error(`the snapshot directory ${root} must not contain "," or ":"`);
    }
  }

  get tmpDir(): string {
    return join(this.root, "tmp");
  }

  get mountsDir(): string {
    return join(this.root, "mounts");
  }

  dirOf(id: SnapshotId): string {
    if (!ID_PATTERN.test(id)) throw new UnknownSnapshotError(id);
    return join(this.root, id);
  }

  fsDir(id: SnapshotId): string {
    return join(this.dirOf(id), "fs");
  }

  async init(): Promise<void> {
    for (const d of [this.root, this.tmpDir, this.mountsDir]) await mkdir(d, { recursive: true });
  }

  private async load(): Promise<Map<SnapshotId, SnapshotInfo>> {
    if (this.records) return this.records;
    await this.init();
    const { records, strays } = this.scan();
    this.records = records;
    this.scannedStrays = strays;
    return records;
  }

  /**
   * Reads every record under the root in one pass. Synchronous on purpose: thousands of small
   * files read in a row take a few milliseconds, where a promise per file (open, stat, read,
   * close on the thread pool) takes tens; it runs once per process, at start-up.
   */
  private scan(): Scan {
    const records = new Map<SnapshotId, SnapshotInfo>();
    const strays: string[] = [];
    const buffer = Buffer.allocUnsafe(4096);
    for (const name of readdirSync(this.root)) {
      if (!ID_PATTERN.test(name)) continue;
      const rec = this.readRecordSync(name as SnapshotId, buffer);
      if (rec) records.set(rec.id, rec);
      else strays.push(join(this.root, name));
    }
    return { records, strays };
  }

  /** A record, read with `buffer` (records are small; a larger one is read whole). */
  private readRecordSync(id: SnapshotId, buffer: Buffer): SnapshotInfo | undefined {
    const path = join(this.root, id, RECORD_FILE);
    let text: string;
    try {
      const fd = openSync(path, "r");
      let n: number;
      try {
        n = readSync(fd, buffer, 0, buffer.length, 0);
      } finally {
        closeSync(fd);
      }
      text = n < buffer.length ? buffer.toString("utf8", 0, n) : readFileSync(path, "utf8");
    } catch (err) {
      if (isAbsent(err) || (err as NodeJS.ErrnoException).code === "ENOTDIR") return undefined;
      throw err;
    }
    try {
      const raw = JSON.parse(text) as SnapshotInfo;
      return {
        id,
        parent: raw.parent,
        kind: raw.kind === "committed" ? "committed" : "active",
        size: raw.size,
        createdAt: raw.createdAt,
      };
    } catch (err) {
      if (err instanceof SyntaxError) return undefined;
      throw err;
    }
  }

  async get(id: SnapshotId): Promise<SnapshotInfo | undefined> {
    if (!ID_PATTERN.test(id)) return undefined;
    return (await this.load()).get(id);
  }

  async require(id: SnapshotId): Promise<SnapshotInfo> {
    const rec = await this.get(id);
    if (!rec) throw new UnknownSnapshotError(id);
    return rec;
  }

  async all(): Promise<SnapshotInfo[]> {
    return [...(await this.load()).values()];
  }

  /** `id`, its parent, its parent's parent, ... */
  async chain(id: SnapshotId): Promise<SnapshotInfo[]> {
    const out: SnapshotInfo[] = [];
    let cur: SnapshotId | undefined = id;
    while (cur !== undefined) {
      const rec = await this.require(cur);
      out.push(rec);
      cur = rec.parent;
    }
    return out;
  }

  /**
   * Makes a new snapshot: `build` fills its directory (still under tmp/), then the record is
   * written and the directory renamed into place.
   */
  create(parent: SnapshotId | undefined, build: (dir: string) => Promise<void>): Promise<SnapshotInfo> {
    return this.make(parent, async (dir) => {
      await build(dir);
      return undefined;
    });
  }

  /**
   * create() for a snapshot that is complete once built (an applied layer): `build` returns its
   * size, and the one record written says committed.
   */
  createCommitted(
    parent: SnapshotId | undefined,
    build: (dir: string) => Promise<number>,
  ): Promise<SnapshotInfo> {
    return this.make(parent, build);
  }

  /**
   * A committed snapshot that has a record in memory only, and no directory until fill() makes
   * one: nothing of it is on disk, so a restart finds no trace of it.
   */
  async createLazy(parent: SnapshotId | undefined, createdAt = Date.now()): Promise<SnapshotInfo> {
    const records = await this.load();
    const id = await this.newId(records);
    const rec: SnapshotInfo = { id, parent, kind: "committed", size: 0, createdAt, lazy: true };
    records.set(id, rec);
    return rec;
  }

  /** Gives a lazy snapshot its directory: built under tmp/ as createCommitted does, then in place. */
  async fill(id: SnapshotId, build: (dir: string) => Promise<number>): Promise<SnapshotInfo> {
    const lazy = await this.require(id);
    if (!lazy.lazy) throw new Error(`snapshot ${id} is not lazy; it has its files already`);
    return this.buildInStaging(id, lazy.parent, build, lazy.createdAt);
  }

  private async newId(records: Map<SnapshotId, SnapshotInfo>): Promise<SnapshotId> {
    for (;;) {
      const id = randomBytes(6).toString("hex") as SnapshotId;
      if (!records.has(id) && !(await lstat(join(this.root, id)).catch(() => undefined))) return id;
    }
  }

  /** `build` returns the size of a snapshot born committed, undefined for an active one. */
  private async make(
    parent: SnapshotId | undefined,
    build: (dir: string) => Promise<number | undefined>,
  ): Promise<SnapshotInfo> {
    return this.buildInStaging(await this.newId(await this.load()), parent, build, Date.now());
  }

  private async buildInStaging(
    id: SnapshotId,
    parent: SnapshotId | undefined,
    build: (dir: string) => Promise<number | undefined>,
    createdAt: number,
  ): Promise<SnapshotInfo> {
    const records = await this.load();
    const staging = join(this.tmpDir, `new-${id}`);
    await mkdir(staging);
    try {
      const size = await build(staging);
      const rec: SnapshotInfo =
        size === undefined
          ? { id, parent, kind: "active", size: 0, createdAt }
          : { id, parent, kind: "committed", size, createdAt };
      await writeFileAtomically(join(staging, RECORD_FILE), JSON.stringify(rec), RECORD_WRITE);
      await rename(staging, join(this.root, id));
      records.set(id, rec);
      return rec;
    } catch (err) {
      await rm(staging, { recursive: true, force: true });
      throw err;
    }
  }

  async update(rec: SnapshotInfo): Promise<void> {
    await writeFileAtomically(join(this.dirOf(rec.id), RECORD_FILE), JSON.stringify(rec), RECORD_WRITE);
    (await this.load()).set(rec.id, rec);
  }

  async children(id: SnapshotId): Promise<SnapshotId[]> {
    return (await this.all()).filter((r) => r.parent === id).map((r) => r.id);
  }

  /** Deletes a snapshot's directory: renamed out of sight first, so a crash midway leaves only tmp/. */
  async delete(id: SnapshotId): Promise<void> {
    const dir = this.dirOf(id);
    const doomed = join(this.tmpDir, `removed-${id}-${randomBytes(3).toString("hex")}`);
    try {
      await rename(dir, doomed);
    } catch (err) {
      if (!isAbsent(err)) throw err;
    }
    (await this.load()).delete(id);
    await rm(doomed, { recursive: true, force: true });
  }

  /**
   * Deletes the directories under the root that are not complete snapshots (crash leftovers) that
   * the scan behind the loaded records saw; reload() first to look at the disk afresh.
   */
  async removeStrays(): Promise<number> {
    await this.load();
    const strays = this.scannedStrays ?? [];
    this.scannedStrays = [];
    for (const stray of strays) await rm(stray, { recursive: true, force: true });
    return strays.length;
  }

  /** Forgets cached records (after another process, or a crash, may have changed the disk). */
  reload(): void {
    this.records = undefined;
    this.scannedStrays = undefined;
  }
}
