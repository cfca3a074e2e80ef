// The overlayfs snapshotter: a snapshot's fs/ is its overlay upper dir, so it holds exactly its
// changes; mounts stack the parent chain (nearest first) as lower dirs. The options that make the
// kernel keep changes out of the upper dir (metadata-only copy-up, directory redirects) are
// turned off, so the upper dir stays a faithful layer. Layers are applied into an upper dir
// unmounted, written in overlay's own whiteout and opaque formats.
import { access, mkdir, utimes } from "node:fs/promises";
import { join } from "node:path";
import type { LayerEntry } from "../archive/layer-entry.js";
import { DirectorySnapshotter } from "./directory-snapshotter.js";
import { overlayUpperEntries } from "./overlay-diff.js";
import type { MountSpec, SnapshotInfo } from "./types.js";

/** Overlay features that write outside plain upper-dir semantics; off when the kernel knows them. */
const FEATURES_OFF = ["index", "redirect_dir", "metacopy"];

let supportedOffOptions: Promise<string[]> | undefined;

/** `index=off` etc. for the features this kernel has (an unknown option fails the mount). */
function overlayBaseOptions(): Promise<string[]> {
  supportedOffOptions ??= (async () => {
    const out: string[] = [];
    for (const f of FEATURES_OFF) {
      const known = await access(`/sys/module/overlay/parameters/${f}`).then(
        () => true,
        () => false,
      );
      if (known) out.push(`${f}=off`);
    }
    return out;
  })();
  return supportedOffOptions;
}

export class OverlaySnapshotter extends DirectorySnapshotter {
  readonly name = "overlayfs" as const;

  /** `stateDir/snapshots/overlayfs` unless a root is given. */
  static at(stateDir: string): OverlaySnapshotter {
    return new OverlaySnapshotter(join(stateDir, "snapshots", "overlayfs"));
  }

  protected async populate(dir: string): Promise<void> {
    const fs = join(dir, "fs");
    await mkdir(fs, { mode: 0o755 });
    // The root's mtime is whatever the moment gave; a whole second is as good, and a RUN step's
    // cleanup, which puts it back after the runtime's mount stubs, can then do so with utimes
    // rather than by starting touch(1) for the nanoseconds.
    const now = Math.floor(Date.now() / 1000);
    await utimes(fs, now, now);
    await mkdir(join(dir, "work"), { mode: 0o700 });
  }

  private async lowerDirs(snapshot: SnapshotInfo): Promise<string[]> {
    return (await this.store.chain(snapshot.id)).map((s) => this.store.fsDir(s.id));
  }

  protected async activeMounts(snapshot: SnapshotInfo): Promise<MountSpec[]> {
    const upper = this.store.fsDir(snapshot.id);
    if (snapshot.parent === undefined) return [{ type: "bind", source: upper, options: ["rbind", "rw"] }];
    const lowers = (await this.lowerDirs(snapshot)).slice(1);
    const options = [
      ...(await overlayBaseOptions()),
      `lowerdir=${lowers.join(":")}`,
      `upperdir=${upper}`,
      `workdir=${join(this.store.dirOf(snapshot.id), "work")}`,
    ];
    return [{ type: "overlay", source: "overlay", options }];
  }

  protected async viewMounts(snapshot: SnapshotInfo): Promise<MountSpec[]> {
    const lowers = await this.lowerDirs(snapshot);
    // The kernel wants two lower dirs for an overlay without an upper one; one is a bind.
    if (lowers.length === 1) return [{ type: "bind", source: lowers[0]!, options: ["rbind", "ro"] }];
    return [
      {
        type: "overlay",
        source: "overlay",
        options: [...(await overlayBaseOptions()), "ro", `lowerdir=${lowers.join(":")}`],
      },
    ];
  }

  protected changes(snapshot: SnapshotInfo): AsyncIterable<LayerEntry> {
    return overlayUpperEntries(this.store.fsDir(snapshot.id));
  }

  protected async layersBelow(parent: SnapshotInfo | undefined): Promise<string[]> {
    return parent ? this.lowerDirs(parent) : [];
  }
}
