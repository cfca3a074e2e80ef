// What the overlay and copy snapshotters share: snapshots kept by a SnapshotStore, temporary mounts
// for withMounted, layers applied straight into a new snapshot's directory (no mount: a mount and
// an unmount cost more than applying a small layer), lazy snapshots whose layer is applied when
// first read, and crash cleanup. Subclasses say how a snapshot's directory is filled, how it is
// mounted, and how its changes are read.
import { mkdtemp, rm, rmdir } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { applyLayerToDir } from "../archive/extract-dir.js";
import type { LayerEntry } from "../archive/layer-entry.js";
import { writeLayerTar } from "../archive/tar-writer.js";
import { diskUsage } from "./fs-entries.js";
import { mountAll, mountPointsUnder, unmountAllUnder } from "./mount.js";
import { SnapshotStore } from "./snapshot-store.js";
import type {
  ActiveSnapshot,
  DeferredLayer,
  LazyLayerOptions,
  MountSpec,
  SnapshotId,
  SnapshotInfo,
  Snapshotter,
} from "./types.js";

export abstract class DirectorySnapshotter implements Snapshotter {
  abstract readonly name: "overlayfs" | "copy";
  protected readonly store: SnapshotStore;
  /** The layers of this process's lazy snapshots, until each is filled. */
  private readonly deferred = new Map<SnapshotId, DeferredLayer>();
  private readonly fillListeners = new Map<SnapshotId, (info: SnapshotInfo) => void>();
  private readonly filling = new Map<SnapshotId, Promise<SnapshotInfo>>();

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
  /**
   * The directories under a new snapshot's `fs/` that a layer applied to it must be looked up
   * through (an overlay upper dir's lower dirs, nearest first); none when `fs/` holds the whole tree.
   */
  protected abstract layersBelow(parent: SnapshotInfo | undefined): Promise<string[]>;

  /** Bytes a snapshot's `fs/` occupies beyond its parent (it holds exactly that, or a copy). */
  protected measure(fsDir: string): Promise<number> {
    return diskUsage(fsDir);
  }

  /** `parent`, checked to be committed and, unless `lazyOk`, with its files (and its parents'). */
  private async committedParent(
    parent: SnapshotId | undefined,
    lazyOk = false,
  ): Promise<SnapshotInfo | undefined> {
    if (parent === undefined) return undefined;
    const parentInfo = lazyOk ? await this.store.require(parent) : await this.filled(parent);
    if (parentInfo.kind !== "committed") {
      throw new Error(`snapshot ${parent} is still active; commit it before using it as a parent`);
    }
    return parentInfo;
  }

  /** The snapshot, with the layers of it and of its parents that were deferred applied first. */
  private async filled(id: SnapshotId): Promise<SnapshotInfo> {
    const chain = await this.store.chain(id);
    for (const rec of chain.reverse()) if (rec.lazy) await this.fill(rec);
    return this.store.require(id);
  }

  private fill(rec: SnapshotInfo): Promise<SnapshotInfo> {
    let p = this.filling.get(rec.id);
    if (!p) {
      p = this.applyDeferred(rec).finally(() => this.filling.delete(rec.id));
      this.filling.set(rec.id, p);
    }
    return p;
  }

  private async applyDeferred(rec: SnapshotInfo): Promise<SnapshotInfo> {
    const layer = this.deferred.get(rec.id);
    if (!layer) throw new Error(`snapshot ${rec.id} was made lazily by another process; its files are gone`);
    const parentInfo = rec.parent === undefined ? undefined : await this.store.require(rec.parent);
    const lowerDirs = await this.layersBelow(parentInfo);
    const filled = await this.store.fill(rec.id, (dir) => this.build(dir, parentInfo, layer(), lowerDirs));
    this.deferred.delete(rec.id);
    this.fillListeners.get(rec.id)?.(filled);
    this.fillListeners.delete(rec.id);
    return filled;
  }

  /** A new snapshot's directory `dir`: the kind's skeleton, `layer` applied, its size measured. */
  private async build(
    dir: string,
    parent: SnapshotInfo | undefined,
    layer: Readable,
    lowerDirs: readonly string[],
  ): Promise<number> {
    try {
      await this.populate(dir, parent);
      const fs = join(dir, "fs");
      await applyLayerToDir(fs, layer, lowerDirs);
      return await this.measure(fs);
    } catch (err) {
      layer.destroy();
      throw err;
    }
  }

  async prepare(parent?: SnapshotId): Promise<ActiveSnapshot> {
    const parentInfo = await this.committedParent(parent);
    const rec = await this.store.create(parent, (dir) => this.populate(dir, parentInfo));
    return { id: rec.id, parent, mounts: await this.activeMounts(rec) };
  }

  async commit(id: SnapshotId): Promise<SnapshotInfo> {
    const rec = await this.store.require(id);
    if (rec.kind === "committed") throw new Error(`snapshot ${id} is already committed`);
    const committed: SnapshotInfo = {
      ...rec,
      kind: "committed",
      size: await this.measure(this.store.fsDir(rec.id)),
    };
    await this.store.update(committed);
    return committed;
  }

  async view(id: SnapshotId): Promise<readonly MountSpec[]> {
    const rec = await this.filled(id);
    if (rec.kind !== "committed")
      throw new Error(`snapshot ${id} is active; only committed snapshots have views`);
    return this.viewMounts(rec);
  }

  ownDir(id: SnapshotId): string {
    return this.store.fsDir(id);
  }

  async withMounted<T>(id: SnapshotId, fn: (dir: string) => Promise<T>): Promise<T> {
    const rec = await this.filled(id);
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
    this.deferred.delete(id);
  }

  list(): Promise<SnapshotInfo[]> {
    return this.store.all();
  }

  diff(id: SnapshotId): Readable {
    const self = this;
    return writeLayerTar(
      (async function* () {
        yield* self.changes(await self.filled(id));
      })(),
    );
  }

  async applyLayer(parent: SnapshotId | undefined, layer: Readable): Promise<SnapshotInfo> {
    let parentInfo: SnapshotInfo | undefined;
    let lowerDirs: string[];
    try {
      parentInfo = await this.committedParent(parent);
      lowerDirs = await this.layersBelow(parentInfo);
    } catch (err) {
      layer.destroy();
      throw err;
    }
    // Built under tmp/ and renamed into place committed: a crash midway leaves nothing that looks
    // like a snapshot.
    return this.store.createCommitted(parent, (dir) => this.build(dir, parentInfo, layer, lowerDirs));
  }

  async applyLayerLazily(
    parent: SnapshotId | undefined,
    layer: DeferredLayer,
    opts: LazyLayerOptions = {},
  ): Promise<SnapshotInfo> {
    await this.committedParent(parent, true);
    const rec = await this.store.createLazy(parent, opts.createdAt);
    this.deferred.set(rec.id, layer);
    if (opts.onFilled) this.fillListeners.set(rec.id, opts.onFilled);
    return rec;
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
