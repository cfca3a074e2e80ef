// The mkdir action, as BuildKit runs it: an existing directory is left alone, `makeParents`
// creates missing parents with the same mode and owner.
import { chmod, lchown, mkdir } from "node:fs/promises";
import { resolveInRoot } from "../../fs/scoped-path.js";
import type { MkdirAction } from "../../llb/ops.js";
import { mkdirAll, setTimes } from "./metadata.js";
import type { FileOwner } from "./owner.js";

export async function executeMkdir(
  action: MkdirAction,
  destRoot: string,
  owner: FileOwner | undefined,
): Promise<void> {
  const path = await resolveInRoot(destRoot, action.path);
  // BuildKit keeps only the permission bits of mkdir modes.
  const mode = action.mode & 0o777;
  if (action.makeParents) {
    await mkdirAll(path, mode, owner, action.timestamp);
    return;
  }
  try {
    await mkdir(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return;
    throw err;
  }
  // Explicit chmod: the result must not depend on the daemon's umask.
  await chmod(path, mode);
  if (owner) await lchown(path, owner.uid, owner.gid);
  if (action.timestamp !== undefined) await setTimes(path, action.timestamp, false);
}
