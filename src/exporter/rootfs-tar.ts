// A whole root filesystem as a tar stream (for `type=local` and `type=tar` outputs): sorted, with
// modes, owners, times, symlinks and hard links kept.
import { createReadStream } from "node:fs";
import { lstat, readdir, readlink } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";

/** Adds the tree below `root` to `pack`, each entry's name under `prefix` (e.g. `linux_arm64/`). */
export async function packDirectory(pack: tar.Pack, root: string, prefix = ""): Promise<void> {
  const hardlinks = new Map<string, string>();
  const add = (header: Partial<tar.Header> & { name: string }) =>
    new Promise<void>((resolve, reject) => {
      pack.entry(header, (err) => (err ? reject(err) : resolve()));
    });
  if (prefix)
    await add({ name: prefix.replace(/\/$/, ""), type: "directory", mode: 0o755, mtime: new Date(0) });
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(root, rel))).sort();
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      const abs = join(root, path);
      const st = await lstat(abs);
      const common = {
        name: prefix + path,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtime: st.mtime,
      };
      if (st.isDirectory()) {
        await add({ ...common, type: "directory" });
        await walk(path);
      } else if (st.isSymbolicLink()) {
        await add({ ...common, type: "symlink", linkname: await readlink(abs) });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? hardlinks.get(key) : undefined;
        if (first) {
          await add({ ...common, type: "link", linkname: first });
          continue;
        }
        if (st.nlink > 1) hardlinks.set(key, prefix + path);
        await new Promise<void>((resolve, reject) => {
          const entry = pack.entry({ ...common, type: "file", size: st.size }, (err) =>
            err ? reject(err) : resolve(),
          );
          pipeline(createReadStream(abs), entry).catch(reject);
        });
      } else if (st.isFIFO()) {
        await add({ ...common, type: "fifo" });
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        await add({
          ...common,
          type: st.isCharacterDevice() ? "character-device" : "block-device",
          devmajor: Math.floor(st.rdev / 256),
          devminor: st.rdev % 256,
        });
      }
    }
  };
  await walk("");
}

export function tarDirectory(root: string): Readable {
  const pack = tar.pack();
  packDirectory(pack, root).then(
    () => pack.finalize(),
    (err) => pack.destroy(err),
  );
  return pack as unknown as Readable;
}
