// The session's local cache directories (`--cache-to type=local,dest=DIR`, `--cache-from
// type=local,src=DIR`): directories on the client's disk, as in Buildx, whatever host the engine
// runs on. The engine names a directory exactly as the request does and a path inside it; the
// client serves only the directories its request named, and `src` directories only for reading.
import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { PassThrough, type Readable, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseCacheExports, parseCacheImports } from "../cache/remote/cache-spec.js";
import type { BuildRequest } from "../client/build-request.js";

/** The prefix of files being written; a layout's pruning removes ones a crash left behind. */
export const CACHE_DIR_TEMP_PREFIX = ".tmp-";

export interface CacheDirAccess {
  /** A file's content, streamed; undefined when there is no such file. */
  read(dir: string, path: string): Promise<Readable | undefined>;
  exists(dir: string, path: string): Promise<boolean>;
  /**
   * Writes a file atomically (a temp file beside it, renamed once complete), creating the
   * directories above it. `done` settles once the file is in place (or the write failed).
   */
  openWrite(dir: string, path: string): Promise<{ stream: Writable; done: Promise<void> }>;
  /** The names in a sub-directory; empty when it does not exist. */
  list(dir: string, path: string): Promise<string[]>;
  remove(dir: string, path: string): Promise<void>;
}

export class CacheDirError extends Error {
  override name = "CacheDirError";
}

/** A path inside a cache directory, refused when it could reach outside it. */
function checkedPath(path: string): string {
  const segments = path.split("/");
  if (path.includes("\0") || segments.some((s) => s === "" || s === "." || s === ".."))
    throw new CacheDirError(`invalid path in a cache directory: ${JSON.stringify(path)}`);
  return path;
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

/** The client's own disk, limited to the cache directories its request names. */
export class HostCacheDirs implements CacheDirAccess {
  /** The request's spelling of each directory → whether it may be written. */
  private dirs?: Map<string, boolean>;

  constructor(private readonly request: BuildRequest) {}

  private pathIn(dir: string, path: string, write: boolean): string {
    // Parsed on first use: the engine reports a malformed cache flag itself, as a usage error.
    if (!this.dirs) {
      const dirs = new Map<string, boolean>();
      for (const s of parseCacheImports(this.request.cacheFrom))
        if (s.type === "local") dirs.set(s.src, dirs.get(s.src) ?? false);
      for (const s of parseCacheExports(this.request.cacheTo))
        if (s.target.type === "local") dirs.set(s.target.dest, true);
      this.dirs = dirs;
    }
    const writable = this.dirs.get(dir);
    if (writable === undefined)
      throw new CacheDirError(`the build did not name ${dir} as a local cache directory`);
    if (write && !writable)
      throw new CacheDirError(`${dir} is a --cache-from directory: the build may only read it`);
    return join(resolve(dir), checkedPath(path));
  }

  async read(dir: string, path: string): Promise<Readable | undefined> {
    const file = this.pathIn(dir, path, false);
    if (!(await isFile(file))) return undefined;
    return createReadStream(file);
  }

  async exists(dir: string, path: string): Promise<boolean> {
    return isFile(this.pathIn(dir, path, false));
  }

  async openWrite(dir: string, path: string): Promise<{ stream: Writable; done: Promise<void> }> {
    const file = this.pathIn(dir, path, true);
    await mkdir(dirname(file), { recursive: true });
    const stream = new PassThrough();
    const done = writeAtomically(stream, file);
    done.catch(() => {});
    return { stream, done };
  }

  async list(dir: string, path: string): Promise<string[]> {
    return readdir(this.pathIn(dir, path, false)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return [];
      throw err;
    });
  }

  async remove(dir: string, path: string): Promise<void> {
    await rm(this.pathIn(dir, path, true), { force: true });
  }
}

async function writeAtomically(data: Readable, path: string): Promise<void> {
  const tmp = join(dirname(path), `${CACHE_DIR_TEMP_PREFIX}${randomBytes(6).toString("hex")}`);
  try {
    // Flushed before the rename: a reader must never find a name whose content is not all there.
    await pipeline(data, createWriteStream(tmp, { flush: true }));
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
