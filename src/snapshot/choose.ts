// Picks the snapshotter for a state directory: overlayfs when a real overlay mount works there
// (it does not on top of another overlay, or without the privilege to mount), the copy
// snapshotter otherwise. KILN_SNAPSHOTTER or an explicit preference overrides the probe.
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rm, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CopySnapshotter } from "./copy.js";
import { mountPointsUnder, mountSpec, unmountAllUnder } from "./mount.js";
import { OverlaySnapshotter } from "./overlay.js";
import type { Snapshotter } from "./types.js";

export type SnapshotterPreference = "overlayfs" | "copy" | "auto";

export type OverlayProbe = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * Mounts a two-layer overlay in `dir`, checks that the lower file shows through and that a delete
 * leaves a whiteout, and unmounts it again.
 */
export async function probeOverlay(dir: string): Promise<OverlayProbe> {
  const base = join(dir, `probe-${randomBytes(4).toString("hex")}`);
  const [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map((d) => join(base, d)) as [
    string,
    string,
    string,
    string,
  ];
  try {
    for (const d of [lower, upper, work, merged]) await mkdir(d, { recursive: true });
    await writeFile(join(lower, "probe"), "probe");
    await mountSpec(
      {
        type: "overlay",
        source: "overlay",
        options: [`lowerdir=${lower}`, `upperdir=${upper}`, `workdir=${work}`],
      },
      merged,
    );
    try {
      if (!(await readdir(merged)).includes("probe"))
        return { ok: false, reason: "the lower layer did not show through" };
      await unlink(join(merged, "probe"));
      if (!(await readdir(upper)).includes("probe"))
        return { ok: false, reason: "deleting did not leave a whiteout" };
    } finally {
      await unmountAllUnder(merged);
    }
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  } finally {
    if ((await mountPointsUnder(base)).length === 0) await rm(base, { recursive: true, force: true });
  }
}

function parsePreference(value: string, from: string): SnapshotterPreference {
  if (value === "overlayfs" || value === "copy" || value === "auto") return value;
  throw new Error(`${from}=${JSON.stringify(value)} is not a snapshotter; use overlayfs, copy or auto`);
}

/** The snapshotter for `stateDir`; "auto" (the default) defers to KILN_SNAPSHOTTER, then to the probe. */
export async function chooseSnapshotter(
  stateDir: string,
  preference: SnapshotterPreference = "auto",
  env: NodeJS.ProcessEnv = process.env,
): Promise<Snapshotter> {
  let choice = preference;
  if (choice === "auto" && env.KILN_SNAPSHOTTER)
    choice = parsePreference(env.KILN_SNAPSHOTTER, "KILN_SNAPSHOTTER");
  if (choice === "copy") return CopySnapshotter.at(stateDir);
  const overlay = OverlaySnapshotter.at(stateDir);
  const probeDir = join(overlay.root, "tmp");
  await mkdir(probeDir, { recursive: true });
  const probe = await probeOverlay(probeDir);
  if (probe.ok) return overlay;
  if (choice === "overlayfs") {
    throw new Error(
      `the overlayfs snapshotter does not work in ${stateDir}: ${probe.reason}; use the copy snapshotter`,
    );
  }
  return CopySnapshotter.at(stateDir);
}
