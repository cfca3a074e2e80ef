// Runs one FileOp action on directories: the entry point the worker calls for each step of a
// FileOp, with the step's output mounted at destRoot and its secondary input (copies) at srcRoot.
import type { FileAction } from "../../llb/ops.js";
import { executeCopy } from "./copy.js";
import type { DeferredLinks } from "./deferred-links.js";
import { FileOpError, toFileOpError } from "./errors.js";
import { executeMkdir } from "./mkdir.js";
import { executeMkfile } from "./mkfile.js";
import { resolveOwner } from "./owner.js";
import { executeRm } from "./rm.js";
import { executeSymlink } from "./symlink.js";

export interface FileActionRoots {
  /** The filesystem the action changes. */
  readonly destRoot: string;
  /** Where a copy's sources come from. */
  readonly srcRoot?: string;
  /** Where owner names are looked up (/etc/passwd, /etc/group); destRoot by default. */
  readonly ownerLookupRoot?: string;
  /** File operations in flight at once during copies. */
  readonly concurrency?: number;
  /**
   * Set when srcRoot is a tree whose files are never modified in place (the engine's synced
   * context copy): files a copy would create unchanged in new directories are recorded here, to
   * be hard-linked into the snapshot once it is unmounted, instead of copied.
   */
  readonly deferredLinks?: DeferredLinks;
}

/**
 * Applies `action` to destRoot. Failures users can act on reject with a FileOpError whose
 * message shows paths as seen inside the filesystems.
 */
export async function executeFileAction(action: FileAction, roots: FileActionRoots): Promise<void> {
  try {
    const owner =
      action.type === "rm"
        ? undefined
        : await resolveOwner(action.owner, roots.ownerLookupRoot ?? roots.destRoot);
    switch (action.type) {
      case "copy":
        if (roots.srcRoot === undefined) throw new FileOpError("copy needs a source filesystem (srcRoot)");
        return await executeCopy(action, {
          srcRoot: roots.srcRoot,
          destRoot: roots.destRoot,
          owner,
          concurrency: roots.concurrency,
          deferredLinks: roots.deferredLinks,
        });
      case "mkdir":
        return await executeMkdir(action, roots.destRoot, owner);
      case "mkfile":
        return await executeMkfile(action, roots.destRoot, owner);
      case "rm":
        return await executeRm(action, roots.destRoot);
      case "symlink":
        return await executeSymlink(action, roots.destRoot, owner);
    }
  } catch (err) {
    throw toFileOpError(err, [roots.destRoot, roots.srcRoot]);
  }
}
