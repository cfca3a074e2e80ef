// Helpers for snapshot and layer tests: temp dirs, hand-made tars (including malicious ones), and
// a manifest of a tree that says everything a layer must preserve.
import { createHash } from "node:crypto";
import { lstat, mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import tarStream from "tar-stream";
import { deviceNumbers, readXattrs } from "../../../src/archive/file-attrs.js";
import { readTarEntries } from "../../../src/archive/tar-reader.js";

export async function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `kiln-${prefix}-`));
}

export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export interface TarSpec {
  readonly name: string;
  readonly type?: "file" | "directory" | "symlink" | "link" | "character-device" | "fifo";
  readonly content?: string;
  readonly linkname?: string;
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly mtime?: Date;
}

/** A tar made entry by entry as given, names untouched (so unsafe ones can be written). */
export async function tarOf(specs: readonly TarSpec[]): Promise<Readable> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
  })();
  for (const s of specs) {
    const type = s.type ?? "file";
    const body = Buffer.from(s.content ?? "");
    await new Promise<void>((resolve, reject) =>
      pack.entry(
        {
          name: s.name,
          type,
          linkname: s.linkname,
          mode: s.mode ?? (type === "directory" ? 0o755 : 0o644),
          uid: s.uid ?? 0,
          gid: s.gid ?? 0,
          mtime: s.mtime ?? new Date(1_700_000_000_000),
        },
        body,
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  }
  pack.finalize();
  await done;
  return Readable.from([Buffer.concat(chunks)]);
}

export async function streamBytes(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

/** "type name[ -> link]" for each entry of a tar, in archive order. */
export async function tarListing(stream: Readable): Promise<string[]> {
  const out: string[] = [];
  for await (const { header } of readTarEntries(stream)) {
    out.push(`${header.type} ${header.name}${header.linkname ? ` -> ${header.linkname}` : ""}`);
  }
  return out;
}

/**
 * One line per path below `root` (the root itself left out) with type, mode, owner, mtime in
 * seconds, content hash, link target, device numbers, xattrs and hard-link group.
 */
export async function treeManifest(root: string): Promise<string[]> {
  const lines: string[] = [];
  const firstPathOfInode = new Map<string, string>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const host = join(dir, name);
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(host, { bigint: true });
      const type = st.isDirectory()
        ? "dir"
        : st.isFile()
          ? "file"
          : st.isSymbolicLink()
            ? "symlink"
            : st.isCharacterDevice()
              ? "char"
              : st.isBlockDevice()
                ? "block"
                : st.isFIFO()
                  ? "fifo"
                  : "other";
      let detail = "";
      if (st.isFile())
        detail = createHash("sha256")
          .update(await readFile(host))
          .digest("hex")
          .slice(0, 16);
      if (st.isSymbolicLink()) detail = `-> ${await readlink(host)}`;
      if (st.isCharacterDevice() || st.isBlockDevice()) {
        const { major, minor } = deviceNumbers(st.rdev);
        detail = `${major}:${minor}`;
      }
      let group = "";
      if (!st.isDirectory() && st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        group = ` linked-to=${firstPathOfInode.get(key) ?? path}`;
        if (!firstPathOfInode.has(key)) firstPathOfInode.set(key, path);
      }
      const xattrs = [...(await readXattrs(host))]
        .filter(([k]) => !k.startsWith("trusted.overlay."))
        .map(([k, v]) => `${k}=${v.toString("hex")}`)
        .join(",");
      const mode = (st.mode & 0o7777n).toString(8);
      const mtime = st.isSymbolicLink() ? "" : ` t=${st.mtimeNs / 1_000_000_000n}`;
      lines.push(`${path} ${type} ${mode} ${st.uid}:${st.gid}${mtime} ${detail}${group} [${xattrs}]`);
      if (st.isDirectory()) await walk(host, path);
    }
  };
  await walk(root, "");
  return lines;
}

/** Lines of /proc/mounts whose mount point is at or under `dir`. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile("/proc/mounts", "utf8");
  return text.split("\n").filter((l) => {
    const mp = l.split(" ")[1];
    return mp !== undefined && (mp === dir || mp.startsWith(`${dir}/`));
  });
}
