// What the overlay and copy snapshotters share: snapshots kept by a SnapshotStore, temporary mounts
// for withMounted, layers applied by extracting through a mount, and crash cleanup. Subclasses say
// how a snapshot's directory is filled, how it is mounted, and how its changes are read.
import { mkdtemp, rm, rmdir } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { applyLayerToDir } from "../archive/extract-dir.js";
import type { LayerEntry } from "../archive/layer-entry.js";
import { writeLayerTar } from "../archive/tar-writer.js";
import { mountAll, mountPointsUnder, unmountAllUnder } from "./mount.js";
import { SnapshotStore } from "./snapshot-store.js";
import type { ActiveSnapshot, MountSpec, SnapshotId, SnapshotInfo, Snapshotter } from "./types.js";

export abstract class DirectorySnapshotter implements Snapshotter {
  abstract readonly name: "overlayfs" | "copy";
  protected readonly store: SnapshotStore;

  constructor(root: string) {
    this.store = new SnapshotStore(root);
  }

  get root(): string {
    return this.store.root;
  }

  /** Fills a new snapshot's directory (`fs/` and whatever else the kind needs). */
  protected abstract populate(dir: string, parent: SnapshotInfo | undefined): Promise<void>;
  protected abstract activeMounts(snapshot: SnapshotInfo): Promise<MountSpec[]>;
  protected abstract viewMounts(snapshot: SnapshotInfo): Promise<MountSpec[]>;
  protected abstract changes(snapshot: SnapshotInfo): AsyncIterable<LayerEntry>;
  /** Bytes the snapshot occupies beyond its parent. */
  protected abstract measure(snapshot: SnapshotInfo): Promise<number>;

  async prepare(parent?: SnapshotId): Promise<ActiveSnapshot> {
    const parentInfo = parent === undefined ? undefined : await this.store.require(parent);
    if (parentInfo && parentInfo.kind !== "committed") {
      throw new Error(`snapshot ${parent} is still active; commit it before using it as a parent`);
    }
    const rec = await this.store.create(parent, (dir) => this.populate(dir, parentInfo));
    return { id: rec.id, parent, mounts: await this.activeMounts(rec) };
  }

  async commit(id: SnapshotId): Promise<SnapshotInfo> {
    const rec = await this.store.require(id);
    if (rec.kind === "committed") throw new Error(`snapshot ${id} is already committed`);
    const committed: SnapshotInfo = { ...rec, kind: "committed", size: await this.measure(rec) };
    await this.store.update(committed);
    return committed;
  }

  async view(id: SnapshotId): Promise<readonly MountSpec[]> {
    const rec = await this.store.require(id);
    if (rec.kind !== "committed")
      throw new Error(`snapshot ${id} is active; only committed snapshots have views`);
    return this.viewMounts(rec);
  }

  ownDir(id: SnapshotId): string {
    return this.store.fsDir(id);
  }

  async withMounted<T>(id: SnapshotId, fn: (dir: string) => Promise<T>): Promise<T> {
    const rec = await this.store.require(id);
    const specs = rec.kind === "active" ? await this.activeMounts(rec) : await this.viewMounts(rec);
    const prefix = join(this.store.mountsDir, `${id}-`);
    const target = await mkdtemp(prefix).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
      await this.store.init();
      return mkdtemp(prefix);
    });
    try {
      await mountAll(specs, target);
      return await fn(target);
    } finally {
      await unmountAllUnder(target);
      // rmdir takes only an empty directory that is no mount point, so it never removes anything
      // through a mount that is somehow still there; such a directory stays until cleanup.
      await rmdir(target).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== "EBUSY" && err.code !== "ENOTEMPTY") throw err;
      });
    }
  }

  stat(id: SnapshotId): Promise<SnapshotInfo | undefined> {
    return this.store.get(id);
  }

  async remove(id: SnapshotId): Promise<void> {
    const rec = await this.store.get(id);
    if (!rec) return;
    const children = await this.store.children(id);
    if (children.length > 0) {
      throw new Error(`snapshot ${id} is the parent of ${children.join(", ")}; remove those first`);
    }
    await this.store.delete(id);
  }

  list(): Promise<SnapshotInfo[]> {
    return this.store.all();
  }

  diff(id: SnapshotId): Readable {
    const self = this;
    return writeLayerTar(
      (async function* () {
        yield* self.changes(await self.store.require(id));
      })(),
    );
  }

  async applyLayer(parent: SnapshotId | undefined, layer: Readable): Promise<SnapshotInfo> {
    const active = await this.prepare(parent);
    try {
      await this.withMounted(active.id, (dir) => applyLayerToDir(dir, layer));
      return await this.commit(active.id);
    } catch (err) {
      layer.destroy();
      await this.remove(active.id).catch(() => {});
      throw err;
    }
  }

  /**
   * Call on an instance made after the crash (at start-up): the records it may already have
   * loaded are the disk's as the crash left it, so they are used as they are.
   */
  async cleanup(keep: (id: SnapshotId) => boolean): Promise<void> {
    await this.store.init();
    if ((await mountPointsUnder(this.root)).length > 0) {
      await unmountAllUnder(this.root);
      const left = await mountPointsUnder(this.root);
      if (left.length > 0)
        throw new Error(`cannot clean up ${this.root}: ${left.join(", ")} is still mounted`);
    }
    await rm(this.store.mountsDir, { recursive: true, force: true });
    await rm(this.store.tmpDir, { recursive: true, force: true });
    await this.store.init();
    await this.store.removeStrays();
    for (const rec of await this.store.all()) {
      if (rec.kind === "active" && !keep(rec.id)) await this.store.delete(rec.id);
    }
  }
}
