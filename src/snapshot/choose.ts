// Picks the snapshotter for a state directory: overlayfs when a real overlay mount works there
// (it does not on top of another overlay, or without the privilege to mount), the copy
// snapshotter otherwise. KILN_SNAPSHOTTER or an explicit preference overrides the probe.
// A successful probe is remembered in the state dir together with everything it depended on
// (boot, kernel, filesystem, the process's privileges and confinement), so a restart on the
// same host skips the two mount(8)/umount(8) runs; any change to those probes again.
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, unlink, writeFile } from "node:fs/promises";
import { release } from "node:os";
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

const PROBE_RECORD = "overlay-probe.json";

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return fallback;
  }
}

/**
 * What an overlay probe's outcome in `dir` depends on: the boot (kernel, modules and their
 * parameters), the filesystem `dir` is on, and who is asking — user, capabilities, seccomp,
 * no_new_privs, user-namespace mapping and LSM label (AppArmor can forbid mounts to root).
 */
export function overlayProbeContext(dir: string): string {
  const status = readOr("/proc/self/status", "")
    .split("\n")
    .filter((l) => /^(Uid|Gid|CapEff|CapBnd|Seccomp|NoNewPrivs):/.test(l))
    .join("\n");
  const st = statSync(dir);
  return createHash("sha256")
    .update(
      JSON.stringify([
        readOr("/proc/sys/kernel/random/boot_id", "").trim(),
        release(),
        `${st.dev}:${st.ino}`,
        status,
        readOr("/proc/self/uid_map", ""),
        readOr("/proc/self/attr/current", ""),
      ]),
    )
    .digest("hex");
}

/** True when `dir` holds a record of a successful probe made in the same context. */
async function probedBefore(dir: string, context: string): Promise<boolean> {
  try {
    const rec = JSON.parse(await readFile(join(dir, PROBE_RECORD), "utf8")) as {
      ok?: unknown;
      context?: unknown;
    };
    return rec.ok === true && rec.context === context;
  } catch {
    return false;
  }
}

async function recordProbe(dir: string, context: string): Promise<void> {
  const tmp = join(dir, `${PROBE_RECORD}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    await writeFile(tmp, JSON.stringify({ ok: true, context }));
    await rename(tmp, join(dir, PROBE_RECORD));
  } catch {
    // Only a missed shortcut: the next start probes again.
    await rm(tmp, { force: true }).catch(() => {});
  }
}

/** The probe's outcome for `dir`, from the record of an earlier success in the same context or afresh. */
async function probeOverlayRemembered(dir: string): Promise<OverlayProbe> {
  const context = overlayProbeContext(dir);
  if (await probedBefore(dir, context)) return { ok: true };
  const probe = await probeOverlay(join(dir, "tmp"));
  if (probe.ok) await recordProbe(dir, context);
  else await rm(join(dir, PROBE_RECORD), { force: true }).catch(() => {});
  return probe;
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
  await mkdir(join(overlay.root, "tmp"), { recursive: true });
  const probe = await probeOverlayRemembered(overlay.root);
  if (probe.ok) return overlay;
  if (choice === "overlayfs") {
    throw new Error(
      `the overlayfs snapshotter does not work in ${stateDir}: ${probe.reason}; use the copy snapshotter`,
    );
  }
  return CopySnapshotter.at(stateDir);
}
