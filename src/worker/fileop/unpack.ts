// ADD of a local tar archive: extracted into the destination instead of copied, as Docker's
// classic builder did and BuildKit keeps doing. Extraction is confined to the destination like
// Docker's chrootarchive: entries named outside it, or links pointing outside it, are refused,
// and every path is resolved inside it so links in the archive cannot redirect writes.

import { execFile } from "node:child_process";
import type { Stats } from "node:fs";
import { createWriteStream } from "node:fs";
import { chmod, lchown, link, lstat, mkdir, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import tar from "tar-stream";
import { cleanPath, splitDirBase } from "../../fs/clean-path.js";
import { isAbsentError, resolveInRoot } from "../../fs/scoped-path.js";
import { detectFileCompression, isTarHeader, openDecompressed, readPrefix } from "./archive-stream.js";
import { FileOpError } from "./errors.js";
import { mkdirAll, setTimes } from "./metadata.js";

const run = promisify(execFile);

/**
 * Whether a host file is a (possibly compressed) tar archive: a regular file whose decompressed
 * bytes start with a valid tar header. An empty archive is not one; it is copied as a file.
 */
export async function isTarArchive(hostPath: string, shownPath: string): Promise<boolean> {
  let st: Stats;
  try {
    st = await lstat(hostPath);
  } catch (err) {
    if (isAbsentError(err)) return false;
    throw err;
  }
  if (!st.isFile()) return false;
  const compression = await detectFileCompression(hostPath);
  let head: Buffer;
  try {
    head = await readPrefix(openDecompressed(hostPath, compression, shownPath), 512);
  } catch (err) {
    // Magic bytes but not decompressible: a file that merely starts like an archive.
    if (err instanceof FileOpError && /not installed/.test(err.message)) throw err;
    return false;
  }
  return isTarHeader(head);
}

/** Extracts the archive at `archiveHost` into the directory `destHost` (which must exist). */
export async function extractTarArchive(
  archiveHost: string,
  destHost: string,
  shownArchive: string,
): Promise<void> {
  const compression = await detectFileCompression(archiveHost);
  // Old (v7) archives have no ustar magic; Go's archive/tar reads them, so do we.
  const extractOptions = { allowUnknownFormat: true };
  const extract = tar.extract(extractOptions as Parameters<typeof tar.extract>[0]);
  const input = openDecompressed(archiveHost, compression, shownArchive);
  const feeding = pipeline(input, extract);
  const outside = (name: string) =>
    new FileOpError(
      `invalid archive ${shownArchive}: entry "${name}" would be written outside of the destination`,
      "invalid",
    );
  // Resolved parent directories, dropped whenever a link or removal could change them.
  const parents = new Map<string, string>();
  const dirTimes: [string, Date | undefined][] = [];

  const parentHost = async (dir: string): Promise<string> => {
    let host = parents.get(dir);
    if (host === undefined) {
      host = await resolveInRoot(destHost, dir, { followFinalSymlink: true });
      await mkdirAll(host, 0o755);
      parents.set(dir, host);
    }
    return host;
  };

  try {
    for await (const entry of extract) {
      const header = entry.header;
      const name = cleanPath(header.name).replace(/^\/+/, "");
      if (name === ".." || name.startsWith("../")) throw outside(header.name);
      if (name === "." || name === "" || name === "/") {
        entry.resume();
        continue;
      }
      const [dir, base] = splitDirBase(name);
      const path = join(await parentHost(dir === "" ? "/" : dir), base);
      const type = header.type ?? "file";
      const existing = await lstat(path).catch((err) => {
        if (isAbsentError(err)) return undefined;
        throw err;
      });
      if (existing && !(existing.isDirectory() && type === "directory")) {
        await rm(path, { recursive: true, force: true });
        parents.clear();
      }
      const mode = (header.mode ?? 0o644) & 0o7777;
      switch (type) {
        case "directory":
          if (!existing?.isDirectory()) await mkdir(path);
          break;
        case "file":
        case "contiguous-file":
          await pipeline(entry, createWriteStream(path, { flags: "wx", mode }));
          break;
        case "symlink": {
          const linkname = header.linkname ?? "";
          // Docker refuses relative link targets that climb out of the extraction directory.
          if (!linkname.startsWith("/")) {
            const target = cleanPath(`${dir}${linkname}`);
            if (target === ".." || target.startsWith("../")) throw outside(`${header.name} -> ${linkname}`);
          }
          await symlink(linkname, path);
          parents.clear();
          break;
        }
        case "link": {
          const linkname = header.linkname ?? "";
          const target = cleanPath(linkname).replace(/^\/+/, "");
          if (target === ".." || target.startsWith("../")) throw outside(`${header.name} -> ${linkname}`);
          await link(await resolveInRoot(destHost, target, { followFinalSymlink: false }), path);
          break;
        }
        case "fifo":
          await run("mknod", [path, "p"]);
          break;
        case "character-device":
        case "block-device":
          await run("mknod", [
            path,
            type === "character-device" ? "c" : "b",
            String(header.devmajor ?? 0),
            String(header.devminor ?? 0),
          ]);
          break;
        default:
          entry.resume();
          continue;
      }
      entry.resume();
      // A hard link shares its target's inode, whose metadata its own entry already set.
      if (type === "link") continue;
      const isLink = type === "symlink";
      await lchown(path, header.uid ?? 0, header.gid ?? 0);
      if (!isLink) await chmod(path, mode);
      if (type === "directory") dirTimes.push([path, header.mtime]);
      else if (header.mtime) await setTimes(path, header.mtime.getTime() / 1000, isLink);
    }
  } catch (err) {
    input.destroy();
    await feeding.catch(() => {});
    throw err;
  }
  await feeding;
  // Directory times last, deepest first, so later entries do not bump them.
  for (const [path, mtime] of dirTimes.reverse())
    if (mtime) await setTimes(path, mtime.getTime() / 1000, false);
}
