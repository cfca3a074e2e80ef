// Applies a layer tar to a directory without ever writing outside it: names are cleaned lexically,
// every parent is resolved component by component inside the root, and an entry that would pass
// through a symlink pointing out of the root is rejected by name. Whiteouts and opaque markers
// delete what they hide — or, when the directory is an overlay upper dir over given lower dirs,
// become overlay's own whiteouts and opaque directories, so a layer is applied without a mount.
// Metadata calls are synchronous: a layer is mostly small entries, and a trip through the thread
// pool per call costs many times the call itself.
import {
  chmodSync,
  closeSync,
  copyFileSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  rmSync,
  type Stats,
  symlinkSync,
  writeSync,
} from "node:fs";
import { open } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import type { Readable } from "node:stream";
import {
  deviceNumbers,
  isWhiteoutDevice,
  makeNode,
  makeWhiteouts,
  readXattrSync,
  readXattrsSync,
  writeXattrSync,
} from "./file-attrs.js";
import { isOverlayPrivateXattr, OPAQUE_MARKER, WHITEOUT_PREFIX } from "./layer-entry.js";
import { layerPathComponents, UnsafeLayerEntryError } from "./layer-path.js";
import { readTarEntries, type TarEntry, type TarEntryHeader } from "./tar-reader.js";

/** The kernel's limit on symlinks followed in one lookup. */
const MAX_LINKS_FOLLOWED = 40;

/** Files up to this size are written with blocking calls; larger ones through the thread pool. */
const SMALL_FILE = 1 << 20;

const OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque";

/** Longest stretch of blocking file-system calls before the event loop gets a turn. */
const YIELD_EVERY_MS = 10;

export interface ExtractOptions {
  /** "apply": `.wh.` entries delete, opaque markers empty their directory; "keep": ordinary files. */
  readonly whiteouts: "apply" | "keep";
  /** "skip" ignores ownership, device and xattr failures an unprivileged user cannot avoid. */
  readonly permissionErrors?: "fail" | "skip";
  /**
   * The layers below the root, nearest first, when the root is an overlayfs upper dir that is not
   * mounted: paths are looked up through them as the mounted overlay would show them, and applied
   * whiteouts and opaque markers are written in overlay's format instead of deleting.
   */
  readonly lowerDirs?: readonly string[];
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

/** A path as the extraction sees it: found in the root itself, or (overlay) in a lower dir. */
interface Found {
  readonly st: Stats;
  readonly host: string;
  readonly inRoot: boolean;
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

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if (isAbsent(err)) return undefined;
    throw err;
  }
}

function joinRel(parts: readonly string[]): string {
  return parts.join("/");
}

/** `rel` itself or anything below it. */
function within(path: string, rel: string): boolean {
  return rel === "" || path === rel || path.startsWith(`${rel}/`);
}

class LayerExtractor {
  /** Paths (relative to the root, symlinks resolved) this layer created or replaced. */
  private readonly written = new Set<string>();
  /** Directory modes and times are set last: creating children changes a directory's mtime. */
  private readonly deferredDirs: DeferredDir[] = [];
  private readonly dirCache = new Map<string, string[]>();
  private readonly lowers: readonly string[];
  /** Overlay only: lower paths this layer deleted, made whiteouts once the whole layer is read. */
  private readonly pendingWhiteouts = new Set<string>();
  /** Overlay only: directories this layer made opaque (the lower dirs' contents are hidden). */
  private readonly opaqueDirs = new Set<string>();
  /** Overlay only: directories known to exist in the root (the upper dir). */
  private readonly inRoot = new Set<string>([""]);
  private entries = 0;
  private bytes = 0;

  constructor(
    private readonly root: string,
    private readonly opts: ExtractOptions,
  ) {
    this.lowers = opts.lowerDirs ?? [];
  }

  private get overlay(): boolean {
    return this.lowers.length > 0;
  }

  async run(source: Readable): Promise<ExtractResult> {
    mkdirSync(this.root, { recursive: true });
    let lastYield = performance.now();
    for await (const entry of readTarEntries(source)) {
      this.entries++;
      await this.apply(entry);
      // The blocking calls add up over thousands of entries: let network reads and the other
      // layers' work in between now and then.
      if (performance.now() - lastYield > YIELD_EVERY_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        lastYield = performance.now();
      }
    }
    await this.writeWhiteouts();
    for (const d of this.deferredDirs.reverse()) {
      const st = lstatOrUndefined(d.hostPath);
      if (!st?.isDirectory()) continue;
      chmodSync(d.hostPath, d.mode);
      lutimesSync(d.hostPath, d.mtime, d.mtime);
    }
    return { entries: this.entries, bytes: this.bytes };
  }

  private host(rel: string): string {
    return rel === "" ? this.root : join(this.root, rel);
  }

  private async apply({ header, body }: TarEntry): Promise<void> {
    const parts = layerPathComponents(header.name);
    const base = parts[parts.length - 1];
    if (this.opts.whiteouts === "apply" && base?.startsWith(WHITEOUT_PREFIX)) {
      if (base === OPAQUE_MARKER) {
        this.opaque(parts.slice(0, -1), header.name);
        return;
      }
      const victim = base.slice(WHITEOUT_PREFIX.length);
      if (victim === "" || victim === "." || victim === "..") {
        throw new UnsafeLayerEntryError(header.name, "the whiteout names no file");
      }
      this.whiteout(parts.slice(0, -1), victim, header.name);
      return;
    }
    if (base === undefined) {
      if (header.type !== "directory") {
        throw new UnsafeLayerEntryError(header.name, "a non-directory cannot replace the layer root");
      }
      this.setMetadata(this.root, header, true);
      return;
    }
    const dirParts = this.resolveDir(parts.slice(0, -1), header.name, true)!;
    const rel = joinRel([...dirParts, base]);
    const target = this.host(rel);
    const existing = lstatOrUndefined(target);
    const merge = existing?.isDirectory() === true && header.type === "directory";
    if (existing && !merge) {
      rmSync(target, { recursive: true, force: true });
      this.forgetDirs(rel);
    }
    // A directory made where this layer deleted a lower one hides what the lower one held.
    const overDeleted = this.pendingWhiteouts.delete(rel) && header.type === "directory";
    switch (header.type) {
      case "directory":
        if (!merge) mkdirSync(target, { mode: 0o700 });
        if (overDeleted) this.markOpaque(rel);
        this.inRoot.add(rel);
        break;
      case "file":
        await writeNewFile(target, header.size, body);
        this.bytes += header.size;
        break;
      case "symlink":
        symlinkSync(header.linkname, target);
        this.dirCache.clear();
        break;
      case "link":
        await this.hardLink(header, target);
        this.written.add(rel);
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
    this.written.add(rel);
    this.setMetadata(target, header, header.type === "directory", !merge);
  }

  private tolerate(op: () => void): void {
    try {
      op();
    } catch (err) {
      if (!(this.opts.permissionErrors === "skip" && isPermissionError(err))) throw err;
    }
  }

  private setMetadata(target: string, header: TarEntryHeader, isDir: boolean, created = false): void {
    // chown clears setuid bits and file capabilities, so it goes first and xattrs go last.
    // What we just created is ours already; most layer entries are root's, so this saves a call.
    const ownedAlready = created && header.uid === process.getuid?.() && header.gid === process.getgid?.();
    if (!ownedAlready) this.tolerate(() => lchownSync(target, header.uid, header.gid));
    if (isDir) {
      this.deferredDirs.push({ hostPath: target, mode: header.mode, mtime: header.mtime });
    } else if (header.type !== "symlink") {
      chmodSync(target, header.mode);
    }
    for (const [name, value] of header.xattrs) {
      if (isOverlayPrivateXattr(name)) continue;
      this.tolerate(() => writeXattrSync(target, name, value));
    }
    if (!isDir) lutimesSync(target, header.mtime, header.mtime);
  }

  private async hardLink(header: TarEntryHeader, target: string): Promise<void> {
    const parts = layerPathComponents(header.linkname, header.name);
    if (parts.length === 0)
      throw new UnsafeLayerEntryError(header.name, "the hard link points at the layer root");
    const dir = this.resolveDir(parts.slice(0, -1), header.name, false);
    const rel = dir === undefined ? undefined : joinRel([...dir, parts[parts.length - 1]!]);
    const found = rel === undefined ? undefined : this.find(rel);
    if (!found || rel === undefined || dir === undefined) {
      throw new Error(
        `layer entry ${JSON.stringify(header.name)}: hard link target ${header.linkname} does not exist`,
      );
    }
    if (found.st.isDirectory()) {
      throw new Error(
        `layer entry ${JSON.stringify(header.name)}: hard link target ${header.linkname} is a directory`,
      );
    }
    // Linking to a lower layer's file takes a copy of it into the upper dir first, as the
    // kernel's copy-up would through a mount.
    if (!found.inRoot) await this.copyUpFile(dir, rel, found, header.name);
    linkSync(this.host(rel), target);
  }

  private whiteout(dirParts: string[], victim: string, name: string): void {
    const dir = this.resolveDir(dirParts, name, false);
    if (dir === undefined) return;
    const rel = joinRel([...dir, victim]);
    const host = this.host(rel);
    if (lstatOrUndefined(host)) {
      rmSync(host, { recursive: true, force: true });
      this.forgetDirs(rel);
    }
    if (this.overlay && this.findBelow(rel)) this.pendingWhiteouts.add(rel);
  }

  private opaque(dirParts: string[], name: string): void {
    const rel = joinRel(this.resolveDir(dirParts, name, true)!);
    const dir = this.host(rel);
    if (this.overlay) {
      this.overlayOpaque(rel);
      return;
    }
    const prefix = rel === "" ? "" : `${rel}/`;
    const hasWrittenChildren = [...this.written].some((p) => p.startsWith(prefix) && p !== rel);
    if (rel === "" || hasWrittenChildren) {
      this.removeUnwritten(dir, rel);
      return;
    }
    // Removing and recreating the directory (rather than emptying it) is what makes overlayfs
    // mark it opaque instead of whiting out each child, when this root is a mounted overlay.
    const st = lstatSync(dir);
    const xattrs = readXattrsSync(dir);
    rmSync(dir, { recursive: true, force: true });
    this.dirCache.clear();
    mkdirSync(dir, { mode: 0o700 });
    lchownSync(dir, st.uid, st.gid);
    chmodSync(dir, st.mode & 0o7777);
    for (const [k, v] of xattrs) if (!isOverlayPrivateXattr(k)) writeXattrSync(dir, k, v);
    lutimesSync(dir, st.atime, st.mtime);
  }

  /**
   * An opaque marker in an upper dir: what this layer has not written there goes, and the lower
   * dirs' contents are hidden — by the opaque flag, or at the root (where overlayfs ignores the
   * flag) by a whiteout for each name below.
   */
  private overlayOpaque(rel: string): void {
    this.removeUnwritten(this.host(rel), rel);
    for (const p of this.pendingWhiteouts) if (p !== rel && within(p, rel)) this.pendingWhiteouts.delete(p);
    if (rel !== "") {
      this.markOpaque(rel);
      return;
    }
    const names = new Set<string>();
    for (const lower of this.lowers) for (const n of readdirSync(lower)) names.add(n);
    for (const n of names) if (!this.written.has(n) && this.findBelow(n)) this.pendingWhiteouts.add(n);
  }

  private markOpaque(rel: string): void {
    writeXattrSync(this.host(rel), OVERLAY_OPAQUE_XATTR, "y");
    this.opaqueDirs.add(rel);
  }

  private async writeWhiteouts(): Promise<void> {
    if (this.pendingWhiteouts.size === 0) return;
    const hosts: string[] = [];
    for (const rel of this.pendingWhiteouts) {
      const parts = rel.split("/");
      this.ensureInRoot(parts.slice(0, -1));
      hosts.push(this.host(rel));
    }
    await makeWhiteouts(hosts);
  }

  private removeUnwritten(dir: string, rel: string): void {
    for (const name of readdirSync(dir)) {
      const childRel = rel === "" ? name : `${rel}/${name}`;
      const child = join(dir, name);
      if (!this.written.has(childRel)) {
        rmSync(child, { recursive: true, force: true });
        this.forgetDirs(childRel);
      } else if (lstatSync(child).isDirectory()) {
        this.removeUnwritten(child, childRel);
      }
    }
  }

  private forgetDirs(rel: string): void {
    this.dirCache.clear();
    for (const d of this.inRoot) if (d !== "" && within(d, rel)) this.inRoot.delete(d);
  }

  /** `rel` as the mounted overlay (or the plain root) would show it. */
  private find(rel: string): Found | undefined {
    const own = lstatOrUndefined(this.host(rel));
    if (own) return { st: own, host: this.host(rel), inRoot: true };
    return this.overlay ? this.findBelow(rel) : undefined;
  }

  /**
   * `rel` in the lower dirs, unless this layer deleted it or made a directory above it opaque, or
   * a lower dir hides it: the nearest dir that has the path decides, and one that has a whiteout,
   * an opaque directory or a non-directory on the way there hides the dirs below it.
   */
  private findBelow(rel: string): Found | undefined {
    for (const p of this.pendingWhiteouts) if (within(rel, p)) return undefined;
    for (const d of this.opaqueDirs) if (d !== rel && within(rel, d)) return undefined;
    const parts = rel.split("/");
    for (const lower of this.lowers) {
      const host = join(lower, rel);
      const st = lstatOrUndefined(host);
      if (st) return isWhiteoutDevice(st) ? undefined : { st, host, inRoot: false };
      for (let k = 1; k < parts.length; k++) {
        const ancestor = join(lower, ...parts.slice(0, k));
        const a = lstatOrUndefined(ancestor);
        if (!a) break;
        if (!a.isDirectory()) return undefined;
        if (readXattrSync(ancestor, OVERLAY_OPAQUE_XATTR)?.toString() === "y") return undefined;
      }
    }
    return undefined;
  }

  /** Makes the directories `parts` exist in the root, taking each one a lower dir has as a copy. */
  private ensureInRoot(parts: readonly string[]): void {
    if (!this.overlay) return;
    for (let k = 1; k <= parts.length; k++) {
      const rel = joinRel(parts.slice(0, k));
      if (this.inRoot.has(rel)) continue;
      const own = lstatOrUndefined(this.host(rel));
      if (own) {
        if (!own.isDirectory()) throw new Error(`${rel} in ${this.root} is not a directory`);
      } else {
        const below = this.findBelow(rel);
        if (below?.st.isDirectory()) {
          mkdirSync(this.host(rel), { mode: 0o700 });
          this.copyMetadata(below, this.host(rel));
        } else mkdirSync(this.host(rel), { mode: 0o755 });
      }
      this.inRoot.add(rel);
    }
  }

  /** A copy of a lower layer's non-directory `found` at `rel` in the root, as the kernel's copy-up makes. */
  private async copyUpFile(
    dirParts: readonly string[],
    rel: string,
    found: Found,
    name: string,
  ): Promise<void> {
    this.ensureInRoot(dirParts);
    const target = this.host(rel);
    const { st } = found;
    if (st.isFile()) copyFileSync(found.host, target);
    else if (st.isSymbolicLink()) symlinkSync(readlinkSync(found.host), target);
    else if (st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO()) {
      const kind = st.isFIFO() ? "fifo" : st.isCharacterDevice() ? "char-device" : "block-device";
      const { major, minor } = deviceNumbers(st.rdev);
      await makeNode(target, kind, major, minor);
    } else {
      throw new Error(
        `layer entry ${JSON.stringify(name)}: its hard link target is a socket, which cannot be copied`,
      );
    }
    this.copyMetadata(found, target);
  }

  /** Gives `target` the owner, mode, xattrs and times of `from` (a symlink's own, never its target's). */
  private copyMetadata(from: Found, target: string): void {
    this.tolerate(() => lchownSync(target, from.st.uid, from.st.gid));
    if (!from.st.isSymbolicLink()) chmodSync(target, from.st.mode & 0o7777);
    for (const [k, v] of readXattrsSync(from.host)) {
      if (!isOverlayPrivateXattr(k)) this.tolerate(() => writeXattrSync(target, k, v));
    }
    lutimesSync(target, from.st.atime, from.st.mtime);
  }

  /**
   * The directory for `parts` below the root, as components with symlinks resolved. Symlinks met
   * on the way are followed only while they stay inside the root; missing directories are created
   * when `create` (else undefined), and with `create` every directory on the way is made to
   * exist in the root itself.
   */
  private resolveDir(parts: readonly string[], name: string, create: boolean): string[] | undefined {
    const key = `${create ? "c" : "l"}:${parts.join("/")}`;
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
      const rel = joinRel([...resolved, component]);
      const found = this.find(rel);
      if (found === undefined) {
        if (!create) return undefined;
        this.ensureInRoot(resolved);
        const host = this.host(rel);
        mkdirSync(host, { mode: 0o755 });
        chmodSync(host, 0o755);
        if (this.pendingWhiteouts.delete(rel)) this.markOpaque(rel);
        resolved.push(component);
        this.written.add(rel);
        this.inRoot.add(rel);
        continue;
      }
      if (found.st.isDirectory()) {
        resolved.push(component);
        continue;
      }
      const shown = rel;
      if (!found.st.isSymbolicLink()) {
        throw new Error(`layer entry ${JSON.stringify(name)}: ${shown} is not a directory`);
      }
      if (++linksFollowed > MAX_LINKS_FOLLOWED) {
        throw new UnsafeLayerEntryError(name, `too many levels of symbolic links at ${shown}`);
      }
      const target = readlinkSync(found.host);
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
    if (create) this.ensureInRoot(resolved);
    this.dirCache.set(key, resolved);
    return resolved;
  }
}

async function writeNewFile(target: string, size: number, body: AsyncIterable<Uint8Array>): Promise<void> {
  if (size <= SMALL_FILE) {
    const fd = openSync(target, "wx", 0o600);
    try {
      for await (const chunk of body) {
        let offset = 0;
        while (offset < chunk.length) offset += writeSync(fd, chunk, offset);
      }
    } finally {
      closeSync(fd);
    }
    return;
  }
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
