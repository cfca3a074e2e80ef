// A snapshotter that records every snapshot it makes in the metadata database, so cache records
// can point at snapshots, and garbage collection and `du` see them.
import type { Readable } from "node:stream";
import type { MetadataDb } from "../cache/metadata-db.js";
import type {
  ActiveSnapshot,
  DeferredLayer,
  LazyLayerOptions,
  MountSpec,
  SnapshotId,
  SnapshotInfo,
  Snapshotter,
} from "../snapshot/types.js";

export class RecordedSnapshotter implements Snapshotter {
  constructor(
    private readonly inner: Snapshotter,
    private readonly db: MetadataDb,
  ) {}

  get name() {
    return this.inner.name;
  }

  async prepare(parent?: SnapshotId): Promise<ActiveSnapshot> {
    const active = await this.inner.prepare(parent);
    this.db.snapshots.record({ id: active.id, parent: active.parent, kind: "active", size: 0 });
    return active;
  }

  async commit(id: SnapshotId): Promise<SnapshotInfo> {
    const info = await this.inner.commit(id);
    this.db.snapshots.record(info);
    return info;
  }

  view(id: SnapshotId): Promise<readonly MountSpec[]> {
    return this.inner.view(id);
  }

  ownDir(id: SnapshotId): string {
    return this.inner.ownDir(id);
  }

  withMounted<T>(id: SnapshotId, fn: (dir: string) => Promise<T>): Promise<T> {
    return this.inner.withMounted(id, fn);
  }

  stat(id: SnapshotId): Promise<SnapshotInfo | undefined> {
    return this.inner.stat(id);
  }

  async remove(id: SnapshotId): Promise<void> {
    await this.inner.remove(id);
    this.db.snapshots.remove(id);
  }

  list(): Promise<SnapshotInfo[]> {
    return this.inner.list();
  }

  diff(id: SnapshotId): Readable {
    return this.inner.diff(id);
  }

  async applyLayer(parent: SnapshotId | undefined, layer: Readable): Promise<SnapshotInfo> {
    const info = await this.inner.applyLayer(parent, layer);
    this.db.snapshots.record(info);
    return info;
  }

  async applyLayerLazily(
    parent: SnapshotId | undefined,
    layer: DeferredLayer,
    opts: LazyLayerOptions = {},
  ): Promise<SnapshotInfo> {
    // Recorded again once filled: its size is known only then (`du`, garbage collection).
    const info = await this.inner.applyLayerLazily(parent, layer, {
      ...opts,
      onFilled: (filled) => {
        this.db.snapshots.record(filled);
        opts.onFilled?.(filled);
      },
    });
    this.db.snapshots.record(info);
    return info;
  }

  cleanup(keep: (id: SnapshotId) => boolean): Promise<void> {
    return this.inner.cleanup(keep);
  }
}
