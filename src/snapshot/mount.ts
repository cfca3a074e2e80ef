// Kernel mounts for snapshots and for what containers get bound in, made with mount(8) and undone
// with umount(8). Overlay option strings
// longer than the kernel's one-page limit are shortened to paths relative to the mount's working
// directory (the kernel resolves overlay dirs against the caller's cwd), as containerd does.
import { readFile } from "node:fs/promises";
import { dirname, relative } from "node:path";
import { runHostCommand as run } from "./host-commands.js";
import type { MountSpec } from "./types.js";

/** The kernel copies at most one page of mount data; keep clear of it. */
const MAX_MOUNT_DATA = 4000;
const OVERLAY_DIR_OPTIONS = ["lowerdir", "upperdir", "workdir"];

async function mountCommand(args: string[], cwd?: string): Promise<void> {
  try {
    await run("mount", args, { cwd });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`mount ${args.join(" ")} failed: ${(e.stderr || e.message).trim()}`);
  }
}

function commonParent(paths: readonly string[]): string {
  let common = dirname(paths[0]!).split("/");
  for (const p of paths.slice(1)) {
    const parts = p.split("/");
    let i = 0;
    while (i < common.length && i < parts.length && common[i] === parts[i]) i++;
    common = common.slice(0, i);
  }
  return common.join("/") || "/";
}

/** Overlay options that fit the kernel's limit, and the directory to run mount(8) in. */
export function fitOverlayOptions(options: readonly string[]): { options: string[]; cwd?: string } {
  if (options.join(",").length <= MAX_MOUNT_DATA) return { options: [...options] };
  const split = (o: string) => [o.slice(0, o.indexOf("=")), o.slice(o.indexOf("=") + 1)] as const;
  const dirs = options
    .filter((o) => OVERLAY_DIR_OPTIONS.includes(split(o)[0]))
    .flatMap((o) => split(o)[1].split(":"));
  // Relative paths already depend on a working directory of their own: leave them as they are.
  if (dirs.length === 0 || dirs.some((d) => !d.startsWith("/"))) return { options: [...options] };
  const cwd = commonParent(dirs);
  const shortened = options.map((o) => {
    const [key, value] = split(o);
    if (!OVERLAY_DIR_OPTIONS.includes(key)) return o;
    return `${key}=${value
      .split(":")
      .map((d) => relative(cwd, d) || ".")
      .join(":")}`;
  });
  const length = shortened.join(",").length;
  if (length > MAX_MOUNT_DATA) {
    throw new Error(
      `an overlay of ${dirs.length} directories needs ${length} bytes of mount options, more than the kernel takes; the snapshot chain is too deep`,
    );
  }
  return { options: shortened, cwd };
}

/** Mounts one MountSpec at `target` (an existing directory or file). */
export async function mountSpec(spec: MountSpec, target: string): Promise<void> {
  if (spec.type === "overlay") {
    const { options, cwd } = fitOverlayOptions(spec.options);
    await mountCommand(["-t", "overlay", "-o", options.join(","), spec.source || "overlay", target], cwd);
    return;
  }
  if (spec.type === "bind") {
    const options = spec.options.some((o) => o === "bind" || o === "rbind")
      ? spec.options
      : ["rbind", ...spec.options];
    await mountCommand(["-o", options.join(","), spec.source, target]);
    return;
  }
  const options = spec.options.length > 0 ? ["-o", spec.options.join(",")] : [];
  await mountCommand(["-t", "tmpfs", ...options, spec.source || "tmpfs", target]);
}

/** Stacks `specs` at `target`; on failure undoes what it mounted. */
export async function mountAll(specs: readonly MountSpec[], target: string): Promise<void> {
  try {
    for (const s of specs) await mountSpec(s, target);
  } catch (err) {
    await unmountAllUnder(target).catch(() => {});
    throw err;
  }
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Mount points at or under `dir`, oldest first. */
export async function mountPointsUnder(dir: string): Promise<string[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  const points: string[] = [];
  for (const line of text.split("\n")) {
    const field = line.split(" ")[4];
    if (field === undefined) continue;
    const mp = unescapeMountinfo(field);
    if (mp === dir || mp.startsWith(prefix)) points.push(mp);
  }
  return points;
}

/** Unmounts everything at or under `dir`, newest first; a busy mount is detached lazily. */
export async function unmountAllUnder(dir: string): Promise<void> {
  for (const mp of (await mountPointsUnder(dir)).reverse()) {
    try {
      await run("umount", [mp]);
    } catch {
      try {
        await run("umount", ["-l", mp]);
      } catch (err) {
        // Taken along by an earlier lazy unmount is as good as unmounted.
        if ((await mountPointsUnder(mp)).includes(mp)) {
          throw new Error(
            `cannot unmount ${mp}: ${((err as { stderr?: string }).stderr ?? String(err)).trim()}`,
          );
        }
      }
    }
  }
}
