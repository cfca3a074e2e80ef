// Kernel mounts on the host (rootfs and overlay mounts a container gets bound into), made and undone
// with util-linux's mount(8) and umount(8).
import { readFile } from "node:fs/promises";
import path from "node:path";
import { runHostCommand as run } from "../../snapshot/host-commands.js";
import type { MountSpec } from "../../snapshot/types.js";

/** The kernel takes mount data up to a page; beyond this we shorten overlay paths (see below). */
const MAX_MOUNT_DATA = 3800;

async function mountCommand(args: string[], cwd?: string): Promise<void> {
  try {
    await run("mount", args, { cwd });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`mount ${args.join(" ")} failed: ${(e.stderr || e.message).trim()}`);
  }
}

function commonDir(paths: readonly string[]): string {
  let parts = path.dirname(paths[0]!).split("/");
  for (const p of paths.slice(1)) {
    const q = p.split("/");
    let i = 0;
    while (i < parts.length && i < q.length && parts[i] === q[i]) i++;
    parts = parts.slice(0, i);
  }
  return parts.join("/") || "/";
}

/**
 * Overlay options with many lower dirs can exceed the kernel's limit on mount data; since the kernel
 * resolves relative overlay paths against the caller's working directory, we mount from the lower
 * dirs' common parent with relative paths, as containerd does.
 */
function compactOverlayOptions(options: readonly string[]): { options: string[]; cwd?: string } {
  if (options.join(",").length <= MAX_MOUNT_DATA) return { options: [...options] };
  const dirKeys = ["lowerdir", "upperdir", "workdir"];
  const all: string[] = [];
  for (const o of options) {
    const [k, v] = [o.slice(0, o.indexOf("=")), o.slice(o.indexOf("=") + 1)];
    if (dirKeys.includes(k)) all.push(...v.split(":"));
  }
  if (all.length === 0 || all.some((p) => !p.startsWith("/"))) return { options: [...options] };
  const cwd = commonDir(all);
  const rel = (p: string) => path.relative(cwd, p) || ".";
  const compacted = options.map((o) => {
    const k = o.slice(0, o.indexOf("="));
    if (!dirKeys.includes(k)) return o;
    return `${k}=${o
      .slice(k.length + 1)
      .split(":")
      .map(rel)
      .join(":")}`;
  });
  if (compacted.join(",").length > 4095) {
    throw new Error(
      `overlay mount has too many layers (${all.length} dirs) to fit in the kernel's mount data`,
    );
  }
  return { options: compacted, cwd };
}

/** Mounts one MountSpec at `target` (an existing directory or file). */
export async function mountAt(spec: MountSpec, target: string): Promise<void> {
  switch (spec.type) {
    case "bind": {
      const opts =
        spec.options.includes("bind") || spec.options.includes("rbind")
          ? spec.options
          : ["rbind", ...spec.options];
      await mountCommand(["-o", opts.join(","), spec.source, target]);
      return;
    }
    case "overlay": {
      const { options, cwd } = compactOverlayOptions(spec.options);
      await mountCommand(["-t", "overlay", "-o", options.join(","), spec.source || "overlay", target], cwd);
      return;
    }
    case "tmpfs": {
      const opt = spec.options.length > 0 ? ["-o", spec.options.join(",")] : [];
      await mountCommand(["-t", "tmpfs", ...opt, spec.source || "tmpfs", target]);
      return;
    }
    default:
      throw new Error(`unsupported mount type ${JSON.stringify((spec as MountSpec).type)}`);
  }
}

/** Stacks `specs` at `target` in order; on failure undoes what it mounted. */
export async function mountAll(specs: readonly MountSpec[], target: string): Promise<void> {
  try {
    for (const s of specs) await mountAt(s, target);
  } catch (err) {
    await unmountTree(target).catch(() => {});
    throw err;
  }
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Mount points at or under `dir`, in mount order (a point mounted twice appears twice). */
export async function mountPointsUnder(dir: string): Promise<string[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const field = line.split(" ")[4];
    if (field === undefined) continue;
    const mp = unescapeMountinfo(field);
    if (mp === dir || mp.startsWith(prefix)) out.push(mp);
  }
  return out;
}

/** Unmounts everything at or under `dir`, newest first; a busy mount is detached lazily. */
export async function unmountTree(dir: string): Promise<void> {
  const points = await mountPointsUnder(dir);
  for (const mp of points.reverse()) {
    try {
      await run("umount", [mp]);
    } catch {
      try {
        await run("umount", ["-l", mp]);
      } catch (err) {
        // Already gone (e.g. taken along by a lazy unmount above it) is what we wanted.
        if ((await mountPointsUnder(mp)).includes(mp)) {
          throw new Error(`cannot unmount ${mp}: ${(err as { stderr?: string }).stderr ?? err}`);
        }
      }
    }
  }
}
