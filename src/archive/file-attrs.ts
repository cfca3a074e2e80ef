// What Node's fs cannot do for layers: extended attributes (through @napi-rs/xattr, which never
// follows symlinks), device nodes and fifos (through mknod(1)), and device numbers from st_rdev.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import xattr from "@napi-rs/xattr";

const run = promisify(execFile);

/** errno values (Linux) meaning "this file system keeps no such attributes". */
const NO_XATTR_SUPPORT = /os error (95|61)\b|not supported/i;

/** All extended attributes of `path` itself (a symlink's own, never its target's). */
export async function readXattrs(path: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  let names: string[];
  try {
    names = await xattr.listAttributes(path);
  } catch (err) {
    if (NO_XATTR_SUPPORT.test(String((err as Error).message))) return out;
    throw new Error(`cannot list extended attributes of ${path}: ${(err as Error).message}`);
  }
  for (const name of names.sort()) {
    const value = await xattr.getAttribute(path, name);
    if (value !== null) out.set(name, Buffer.from(value));
  }
  return out;
}

export async function readXattr(path: string, name: string): Promise<Buffer | undefined> {
  try {
    return (await xattr.getAttribute(path, name)) ?? undefined;
  } catch (err) {
    if (NO_XATTR_SUPPORT.test(String((err as Error).message))) return undefined;
    throw err;
  }
}

/** readXattrs without the thread pool: for the many small files of a layer applied in one go. */
export function readXattrsSync(path: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let names: string[];
  try {
    names = xattr.listAttributesSync(path);
  } catch (err) {
    if (NO_XATTR_SUPPORT.test(String((err as Error).message))) return out;
    throw new Error(`cannot list extended attributes of ${path}: ${(err as Error).message}`);
  }
  for (const name of names.sort()) {
    const value = xattr.getAttributeSync(path, name);
    if (value !== null) out.set(name, Buffer.from(value));
  }
  return out;
}

export function readXattrSync(path: string, name: string): Buffer | undefined {
  try {
    return xattr.getAttributeSync(path, name) ?? undefined;
  } catch (err) {
    if (NO_XATTR_SUPPORT.test(String((err as Error).message))) return undefined;
    throw err;
  }
}

export function writeXattrSync(path: string, name: string, value: Uint8Array | string): void {
  try {
    xattr.setAttributeSync(path, name, value);
  } catch (err) {
    throw new Error(`cannot set extended attribute ${name} on ${path}: ${(err as Error).message}`);
  }
}

export async function writeXattr(path: string, name: string, value: Buffer): Promise<void> {
  try {
    await xattr.setAttribute(path, name, value);
  } catch (err) {
    throw new Error(`cannot set extended attribute ${name} on ${path}: ${(err as Error).message}`);
  }
}

export type NodeKind = "char-device" | "block-device" | "fifo";

/** Creates a device node or fifo; the caller sets owner and mode afterwards (mknod obeys umask). */
export async function makeNode(path: string, kind: NodeKind, major = 0, minor = 0): Promise<void> {
  const args =
    kind === "fifo" ? [path, "p"] : [path, kind === "char-device" ? "c" : "b", String(major), String(minor)];
  try {
    await run("mknod", args);
  } catch (err) {
    const e = err as { stderr?: string; message: string; code?: string };
    if (e.code === "ENOENT")
      throw new Error("cannot create device nodes: the mknod program is not installed");
    throw Object.assign(new Error(`mknod ${args.join(" ")} failed: ${(e.stderr || e.message).trim()}`), {
      code: /not permitted/i.test(e.stderr ?? "") ? "EPERM" : undefined,
    });
  }
}

/** Paths per mknod run: well under the kernel's limit on one command line. */
const WHITEOUTS_PER_RUN = 256;

/**
 * Creates overlayfs whiteouts (0/0 character devices) at `paths`: one shell per few hundred, as a
 * layer deleting many files would otherwise start mknod(1) once per file.
 */
export async function makeWhiteouts(paths: readonly string[]): Promise<void> {
  for (let i = 0; i < paths.length; i += WHITEOUTS_PER_RUN) {
    const batch = paths.slice(i, i + WHITEOUTS_PER_RUN);
    try {
      await run("sh", ["-c", 'for p; do mknod "$p" c 0 0 || exit 1; done', "sh", ...batch]);
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`creating overlay whiteouts failed: ${(e.stderr || e.message).trim()}`);
    }
  }
}

/** An overlayfs whiteout: a character device with device number 0/0. */
export function isWhiteoutDevice(st: { isCharacterDevice(): boolean; rdev: number | bigint }): boolean {
  return st.isCharacterDevice() && BigInt(st.rdev) === 0n;
}

/** Linux's split of a dev_t into major and minor numbers (glibc's gnu_dev_major/minor). */
export function deviceNumbers(rdev: number | bigint): { major: number; minor: number } {
  const d = BigInt(rdev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}
