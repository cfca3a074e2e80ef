// Whole-file writes that readers never see half done: the data goes to a temp file beside the
// target, which is then renamed over it (a crash leaves the old file, or the new one, and at worst
// a stray temp file).
import { randomBytes } from "node:crypto";
import { rename, rm, writeFile } from "node:fs/promises";

export interface AtomicWriteOptions {
  /** The new file's mode (before the umask). */
  readonly mode?: number;
  /** Flush the data to disk before the rename, so a power loss cannot leave an empty file. */
  readonly durable?: boolean;
}

export async function writeFileAtomically(
  path: string,
  data: string | Uint8Array,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    await writeFile(tmp, data, {
      ...(opts.mode !== undefined ? { mode: opts.mode } : {}),
      ...(opts.durable ? { flush: true } : {}),
    });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
