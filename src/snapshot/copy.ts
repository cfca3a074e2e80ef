// The copy snapshotter, for file systems overlayfs cannot stack on: every snapshot is a full copy
// of its parent's tree (cp -a keeps hard links, symlinks, modes, owners, xattrs, devices and
// times; reflinks where the file system has them), mounted with binds; its changes are found by
// comparing it with the parent's tree.
import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { LayerEntry } from "../archive/layer-entry.js";
import { DirectorySnapshotter } from "./directory-snapshotter.js";
import { treeDiffEntries } from "./tree-diff.js";
import type { MountSpec, SnapshotInfo } from "./types.js";

const run = promisify(execFile);

export class CopySnapshotter extends DirectorySnapshotter {
  readonly name = "copy" as const;

  /** `stateDir/snapshots/copy`. */
  static at(stateDir: string): CopySnapshotter {
    return new CopySnapshotter(join(stateDir, "snapshots", "copy"));
  }

  protected async populate(dir: string, parent: SnapshotInfo | undefined): Promise<void> {
    const fs = join(dir, "fs");
    if (parent === undefined) {
      await mkdir(fs, { mode: 0o755 });
      return;
    }
    try {
      await run("cp", ["-a", "--reflink=auto", "--", this.store.fsDir(parent.id), fs], {
        maxBuffer: 16 * 1024 * 1024,
      });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`copying snapshot ${parent.id} failed: ${(e.stderr || e.message).trim()}`);
    }
  }

  protected async activeMounts(snapshot: SnapshotInfo): Promise<MountSpec[]> {
    return [{ type: "bind", source: this.store.fsDir(snapshot.id), options: ["rbind", "rw"] }];
  }

  protected async viewMounts(snapshot: SnapshotInfo): Promise<MountSpec[]> {
    return [{ type: "bind", source: this.store.fsDir(snapshot.id), options: ["rbind", "ro"] }];
  }

  protected changes(snapshot: SnapshotInfo): AsyncIterable<LayerEntry> {
    const parent = snapshot.parent === undefined ? undefined : this.store.fsDir(snapshot.parent);
    return treeDiffEntries(this.store.fsDir(snapshot.id), parent);
  }

  /** A copy holds its parent's whole tree: a layer deletes from it as it would through a mount. */
  protected async layersBelow(): Promise<string[]> {
    return [];
  }
}
