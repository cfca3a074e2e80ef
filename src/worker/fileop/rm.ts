// The rm action: removes a path (recursively; a final symlink itself, not its target), or every
// match of a wildcard, as BuildKit's rm does.
import { lstat, rm } from "node:fs/promises";
import { join } from "node:path";
import { cleanPath, splitDirBase } from "../../fs/clean-path.js";
import { isAbsentError, resolveInRoot } from "../../fs/scoped-path.js";
import { resolveWildcards } from "../../fs/wildcards.js";
import type { RmAction } from "../../llb/ops.js";
import { FileOpError } from "./errors.js";

export async function executeRm(action: RmAction, destRoot: string): Promise<void> {
  if (action.allowWildcard) {
    // A wildcard that matches nothing removes nothing, whatever allowNotFound says (as BuildKit).
    for (const match of await resolveWildcards(destRoot, action.path, false))
      await removePath(destRoot, match, action.allowNotFound);
    return;
  }
  await removePath(destRoot, action.path, action.allowNotFound);
}

async function removePath(destRoot: string, path: string, allowNotFound: boolean): Promise<void> {
  const shown = cleanPath(`/${path}`);
  const [dir, base] = splitDirBase(shown);
  if (base === "")
    throw new FileOpError(`rm ${shown}: refusing to remove the root directory`, "invalid", shown);
  const hostPath = join(await resolveInRoot(destRoot, dir), base);
  if (!allowNotFound) {
    try {
      await lstat(hostPath);
    } catch (err) {
      if (isAbsentError(err))
        throw new FileOpError(`rm ${shown}: no such file or directory`, "not-found", shown);
      throw err;
    }
  }
  await rm(hostPath, { recursive: true, force: true });
}
