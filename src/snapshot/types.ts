// The snapshotter's contract: layered root filesystems, as containerd's snapshotter shapes them.
// A committed snapshot is immutable and has at most one parent; an active one is writable.
import type { Readable } from "node:stream";

declare const snapshotIdBrand: unique symbol;
export type SnapshotId = string & { readonly [snapshotIdBrand]: true };

/** A mount as the kernel (and an OCI runtime spec) takes it. */
export interface MountSpec {
  readonly type: "bind" | "overlay" | "tmpfs";
  readonly source: string;
  readonly options: readonly string[];
}

export interface ActiveSnapshot {
  readonly id: SnapshotId;
  readonly parent?: SnapshotId;
  /** How to mount it read-write at some target. */
  readonly mounts: readonly MountSpec[];
}

export interface SnapshotInfo {
  readonly id: SnapshotId;
  readonly parent?: SnapshotId;
  readonly kind: "committed" | "active";
  /** Bytes this snapshot adds over its parent. */
  readonly size: number;
  readonly createdAt: number;
  /** Committed, but its layer is applied only when the snapshot is first read (applyLayerLazily). */
  readonly lazy?: true;
}

/**
 * A layer applied later: each call gives its uncompressed tar, a stream that errors at its end
 * when the bytes are not the layer promised (the diff ID).
 */
export type DeferredLayer = () => Readable;

export interface LazyLayerOptions {
  /** When the layer was made (ms), if known (an imported cache says); now otherwise. */
  readonly createdAt?: number;
  /** Told the snapshot as it is once its layer has been applied (its size is known then). */
  readonly onFilled?: (info: SnapshotInfo) => void;
}

export interface Snapshotter {
  readonly name: "overlayfs" | "copy";
  /** A new writable snapshot on top of `parent` (or empty). */
  prepare(parent?: SnapshotId): Promise<ActiveSnapshot>;
  /** Freezes an active snapshot; its id stays the same and becomes usable as a parent. */
  commit(id: SnapshotId): Promise<SnapshotInfo>;
  /** Read-only mounts of a committed snapshot. */
  view(id: SnapshotId): Promise<readonly MountSpec[]>;
  /** Mounts `id` (active: read-write, committed: read-only) at a temporary dir for `fn`, then unmounts. */
  withMounted<T>(id: SnapshotId, fn: (dir: string) => Promise<T>): Promise<T>;
  /**
   * The host directory holding the snapshot's own files (overlayfs: its upper dir; copy: its whole
   * tree). It may be written only while the snapshot is active and not mounted.
   */
  ownDir(id: SnapshotId): string;
  stat(id: SnapshotId): Promise<SnapshotInfo | undefined>;
  remove(id: SnapshotId): Promise<void>;
  list(): Promise<SnapshotInfo[]>;
  /** The changes of a committed snapshot over its parent, as an uncompressed OCI layer tar. */
  diff(id: SnapshotId): Readable;
  /** Applies an uncompressed OCI layer tar onto `parent`, safely; returns the committed snapshot. */
  applyLayer(parent: SnapshotId | undefined, layer: Readable): Promise<SnapshotInfo>;
  /**
   * applyLayer, deferred: the snapshot is committed at once, but its files are written only when
   * it is first read or built on (a mount, a view, a diff, a child), so an imported cache result
   * that no step and no output opens costs no unpacking. It lives in this process only: one never
   * read is gone after a restart, like a snapshot that was never made.
   */
  applyLayerLazily(
    parent: SnapshotId | undefined,
    layer: DeferredLayer,
    opts?: LazyLayerOptions,
  ): Promise<SnapshotInfo>;
  /** Removes leftovers of a crashed process: active snapshots with no owner, stale mounts. */
  cleanup(keep: (id: SnapshotId) => boolean): Promise<void>;
}
