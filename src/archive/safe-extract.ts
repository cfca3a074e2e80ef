// Applies a layer tar to a directory without ever writing outside it: names are cleaned lexically,
// every parent is resolved component by component inside the root, and an entry that would pass
// through a symlink pointing out of the root is rejected by name. Whiteouts and opaque markers
// delete what they hide (on an overlay mount the kernel turns that into its own whiteouts).
import {
  chmod,
  lchown,
  link,
  lstat,
  lutimes,
  mkdir,
  open,
  readdir,
  readlink,
  rm,
  symlink,
} from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import type { Readable } from "node:stream";
import { makeNode, readXattrs, writeXattr } from "./file-attrs.js";
import { isOverlayPrivateXattr, OPAQUE_MARKER, WHITEOUT_PREFIX } from "./layer-entry.js";
import { layerPathComponents, UnsafeLayerEntryError } from "./layer-path.js";
import { readTarEntries, type TarEntry, type TarEntryHeader } from "./tar-reader.js";

/** The kernel's limit on symlinks followed in one lookup. */
const MAX_LINKS_FOLLOWED = 40;

export interface ExtractOptions {
  /** "apply": `.wh.` entries delete, opaque markers empty their directory; "keep": ordinary files. */
  readonly whiteouts: "apply" | "keep";
  /** "skip" ignores ownership, device and xattr failures an unprivileged user cannot avoid. */
  readonly permissionErrors?: "fail" | "skip";
}

export interface ExtractResult {
  readonly entries: number;
  /** Bytes of file content written. */
  readonly bytes: number;
}

interface DeferredDir {
  readonly hostPath: string;
  readonly mode: number;
  readonly mtime: number;
}

function isAbsent(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENOTDIR";
}

function isPermissionError(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException;
  return (
    e.code === "EPERM" || e.code === "EACCES" || /os error (1|13|95)\b|not permitted/i.test(e.message ?? "")
  );
}

class LayerExtractor {
  /** Paths (relative to the root, symlinks resolved) this layer created or replaced. */
  private readonly written = new Set<string>();
  /** Directory modes and times are set last: creating children changes a directory's mtime. */
  private readonly deferredDirs: DeferredDir[] = [];
  private readonly dirCache = new Map<string, string>();
  private entries = 0;
  private bytes = 0;

  constructor(
    private readonly root: string,
    private readonly opts: ExtractOptions,
  ) {}

  async run(source: Readable): Promise<ExtractResult> {
    await mkdir(this.root, { recursive: true });
    for await (const entry of readTarEntries(source)) {
      this.entries++;
      await this.apply(entry);
    }
    for (const d of this.deferredDirs.reverse()) {
      try {
        if (!(await lstat(d.hostPath)).isDirectory()) continue;
        await chmod(d.hostPath, d.mode);
        await lutimes(d.hostPath, d.mtime, d.mtime);
      } catch (err) {
        if (!isAbsent(err)) throw err;
      }
    }
    return { entries: this.entries, bytes: this.bytes };
  }

  private rel(hostPath: string): string {
    return relative(this.root, hostPath);
  }

  private async apply({ header, body }: TarEntry): Promise<void> {
    const parts = layerPathComponents(header.name);
    const base = parts[parts.length - 1];
    if (this.opts.whiteouts === "apply" && base?.startsWith(WHITEOUT_PREFIX)) {
      if (base === OPAQUE_MARKER) return this.opaque(parts.slice(0, -1), header.name);
      const victim = base.slice(WHITEOUT_PREFIX.length);
      if (victim === "" || victim === "." || victim === "..") {
        throw new UnsafeLayerEntryError(header.name, "the whiteout names no file");
      }
      return this.whiteout(parts.slice(0, -1), victim, header.name);
    }
    if (base === undefined) {
      if (header.type !== "directory") {
        throw new UnsafeLayerEntryError(header.name, "a non-directory cannot replace the layer root");
      }
      await this.setMetadata(this.root, header, true);
      return;
    }
    const dir = await this.resolveDir(parts.slice(0, -1), header.name, true);
    const target = join(dir!, base);
    const existing = await lstat(target).catch((err) => {
      if (isAbsent(err)) return undefined;
      throw err;
    });
    const merge = existing?.isDirectory() === true && header.type === "directory";
    if (existing && !merge) {
      await rm(target, { recursive: true, force: true });
      this.dirCache.clear();
    }
    switch (header.type) {
      case "directory":
        if (!merge) await mkdir(target, { mode: 0o700 });
        break;
      case "file":
        await writeNewFile(target, body);
        this.bytes += header.size;
        break;
      case "symlink":
        await symlink(header.linkname, target);
        this.dirCache.clear();
        break;
      case "link":
        await this.hardLink(header, target);
        this.written.add(this.rel(target));
        return;
      case "character-device":
      case "block-device":
      case "fifo":
        try {
          const kind = header.type === "character-device" ? "char-device" : header.type;
          await makeNode(target, kind, header.devMajor, header.devMinor);
        } catch (err) {
          if (this.opts.permissionErrors === "skip" && isPermissionError(err)) return;
          throw new Error(`layer entry ${JSON.stringify(header.name)}: ${(err as Error).message}`);
        }
        break;
      default:
        throw new Error(
          `layer entry ${JSON.stringify(header.name)} has tar type ${JSON.stringify(header.rawType)}, which cannot be applied`,
        );
    }
    this.written.add(this.rel(target));
    await this.setMetadata(target, header, header.type === "directory", !merge);
  }

  private async setMetadata(
    target: string,
    header: TarEntryHeader,
    isDir: boolean,
    created = false,
  ): Promise<void> {
    const tolerate = async (op: () => Promise<void>) => {
      try {
        await op();
      } catch (err) {
        if (!(this.opts.permissionErrors === "skip" && isPermissionError(err))) throw err;
      }
    };
    // chown clears setuid bits and file capabilities, so it goes first and xattrs go last.
    // What we just created is ours already; most layer entries are root's, so this saves a call.
    const ownedAlready = created && header.uid === process.getuid?.() && header.gid === process.getgid?.();
    if (!ownedAlready) await tolerate(() => lchown(target, header.uid, header.gid));
    if (isDir) {
      this.deferredDirs.push({ hostPath: target, mode: header.mode, mtime: header.mtime });
    } else if (header.type !== "symlink") {
      await chmod(target, header.mode);
    }
    for (const [name, value] of header.xattrs) {
      if (isOverlayPrivateXattr(name)) continue;
      await tolerate(() => writeXattr(target, name, value));
    }
    if (!isDir) await lutimes(target, header.mtime, header.mtime);
  }

  private async hardLink(header: TarEntryHeader, target: string): Promise<void> {
    const parts = layerPathComponents(header.linkname, header.name);
    if (parts.length === 0)
      throw new UnsafeLayerEntryError(header.name, "the hard link points at the layer root");
    const dir = await this.resolveDir(parts.slice(0, -1), header.name, false);
    const source = dir === undefined ? undefined : join(dir, parts[parts.length - 1]!);
    const st = source === undefined ? undefined : await lstat(source).catch(() => undefined);
    if (!st || !source) {
      throw new Error(
        `layer entry ${JSON.stringify(header.name)}: hard link target ${header.linkname} does not exist`,
      );
    }
    if (st.isDirectory()) {
      throw new Error(
        `layer entry ${JSON.stringify(header.name)}: hard link target ${header.linkname} is a directory`,
      );
    }
    await link(source, target);
  }

  private async whiteout(dirParts: string[], victim: string, name: string): Promise<void> {
    const dir = await this.resolveDir(dirParts, name, false);
    if (dir === undefined) return;
    await rm(join(dir, victim), { recursive: true, force: true });
    this.dirCache.clear();
  }

  private async opaque(dirParts: string[], name: string): Promise<void> {
    const dir = (await this.resolveDir(dirParts, name, true))!;
    const rel = this.rel(dir);
    const prefix = rel === "" ? "" : `${rel}/`;
    const hasWrittenChildren = [...this.written].some((p) => p.startsWith(prefix) && p !== rel);
    if (rel === "" || hasWrittenChildren) {
      await this.removeUnwritten(dir, rel);
      return;
    }
    // Removing and recreating the directory (rather than emptying it) is what makes overlayfs
    // mark it opaque instead of whiting out each child.
    const st = await lstat(dir);
    const xattrs = await readXattrs(dir);
    await rm(dir, { recursive: true, force: true });
    this.dirCache.clear();
    await mkdir(dir, { mode: 0o700 });
    await lchown(dir, st.uid, st.gid);
    await chmod(dir, st.mode & 0o7777);
    for (const [k, v] of xattrs) if (!isOverlayPrivateXattr(k)) await writeXattr(dir, k, v);
    await lutimes(dir, st.atime, st.mtime);
  }

  private async removeUnwritten(dir: string, rel: string): Promise<void> {
    for (const name of await readdir(dir)) {
      const childRel = rel === "" ? name : `${rel}/${name}`;
      const child = join(dir, name);
      if (!this.written.has(childRel)) {
        await rm(child, { recursive: true, force: true });
        this.dirCache.clear();
      } else if ((await lstat(child)).isDirectory()) {
        await this.removeUnwritten(child, childRel);
      }
    }
  }

  /**
   * The host directory for `parts` below the root. Symlinks met on the way are followed only while
   * they stay inside the root; missing directories are created when `create` (else undefined).
   */
  private async resolveDir(
    parts: readonly string[],
    name: string,
    create: boolean,
  ): Promise<string | undefined> {
    const key = parts.join("/");
    const cached = this.dirCache.get(key);
    if (cached !== undefined) return cached;
    const pending = [...parts].reverse();
    let resolved: string[] = [];
    let linksFollowed = 0;
    let lastLink: string | undefined;
    while (pending.length > 0) {
      const component = pending.pop()!;
      if (component === "" || component === ".") continue;
      if (component === "..") {
        if (resolved.length === 0) {
          const via = lastLink ? `the symlink ${lastLink}` : "a symlink";
          throw new UnsafeLayerEntryError(
            name,
            `it goes through ${via}, which points outside the layer root`,
          );
        }
        resolved.pop();
        continue;
      }
      const host = join(this.root, ...resolved, component);
      const st = await lstat(host).catch((err) => {
        if (isAbsent(err)) return undefined;
        throw err;
      });
      if (st === undefined) {
        if (!create) return undefined;
        await mkdir(host, { mode: 0o755 });
        await chmod(host, 0o755);
        resolved.push(component);
        this.written.add(resolved.join("/"));
        continue;
      }
      if (st.isDirectory()) {
        resolved.push(component);
        continue;
      }
      const shown = [...resolved, component].join("/");
      if (!st.isSymbolicLink()) {
        throw new Error(`layer entry ${JSON.stringify(name)}: ${shown} is not a directory`);
      }
      if (++linksFollowed > MAX_LINKS_FOLLOWED) {
        throw new UnsafeLayerEntryError(name, `too many levels of symbolic links at ${shown}`);
      }
      const target = await readlink(host);
      if (target.startsWith("/")) {
        // Taken as the host would take it: only a link into the root itself stays inside.
        const abs = resolve(target);
        if (abs !== this.root && !abs.startsWith(`${this.root}/`)) {
          throw new UnsafeLayerEntryError(
            name,
            `it goes through the symlink ${shown} -> ${target}, which points outside the layer root`,
          );
        }
        resolved = [];
        pending.push(...relative(this.root, abs).split("/").reverse());
      } else {
        pending.push(...target.split("/").reverse());
      }
      lastLink = `${shown} -> ${target}`;
    }
    const host = join(this.root, ...resolved);
    this.dirCache.set(key, host);
    return host;
  }
}

async function writeNewFile(target: string, body: AsyncIterable<Uint8Array>): Promise<void> {
  const fh = await open(target, "wx", 0o600);
  try {
    for await (const chunk of body) await fh.write(chunk);
  } finally {
    await fh.close();
  }
}

/** Extracts the uncompressed tar `source` into `root` (created if missing). */
export function extractLayer(root: string, source: Readable, opts: ExtractOptions): Promise<ExtractResult> {
  return new LayerExtractor(resolve(root), opts).run(source);
}
