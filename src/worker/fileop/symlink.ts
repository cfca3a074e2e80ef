// The symlink action: creates `newpath` (resolved inside the root, its own name not followed)
// pointing at `oldpath`, which is stored as given and never resolved.
import { lchown, symlink } from "node:fs/promises";
import { join } from "node:path";
import { cleanPath, splitDirBase } from "../../fs/clean-path.js";
import { resolveInRoot } from "../../fs/scoped-path.js";
import type { SymlinkAction } from "../../llb/ops.js";
import { FileOpError } from "./errors.js";
import { setTimes } from "./metadata.js";
import type { FileOwner } from "./owner.js";

export async function executeSymlink(
  action: SymlinkAction,
  destRoot: string,
  owner: FileOwner | undefined,
): Promise<void> {
  const shown = cleanPath(`/${action.newpath}`);
  const [dir, base] = splitDirBase(shown);
  if (base === "")
    throw new FileOpError(`symlink ${shown}: cannot replace the root directory`, "invalid", shown);
  const path = join(await resolveInRoot(destRoot, dir), base);
  await symlink(action.oldpath, path);
  if (owner) await lchown(path, owner.uid, owner.gid);
  if (action.timestamp !== undefined) await setTimes(path, action.timestamp, true);
}
