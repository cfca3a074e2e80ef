// The mkfile action: writes base64 data to a path (its final symlink followed, inside the root),
// replacing the content of an existing file, with the given mode, owner and time.
import { chmod, lchown, writeFile } from "node:fs/promises";
import { resolveInRoot } from "../../fs/scoped-path.js";
import type { MkfileAction } from "../../llb/ops.js";
import { setTimes } from "./metadata.js";
import type { FileOwner } from "./owner.js";

export async function executeMkfile(
  action: MkfileAction,
  destRoot: string,
  owner: FileOwner | undefined,
): Promise<void> {
  const path = await resolveInRoot(destRoot, action.path);
  const mode = action.mode & 0o777;
  await writeFile(path, Buffer.from(action.data, "base64"), { mode });
  // Explicit chmod: independent of the umask, and applied to a file that already existed too.
  await chmod(path, mode);
  if (owner) await lchown(path, owner.uid, owner.gid);
  if (action.timestamp !== undefined) await setTimes(path, action.timestamp, false);
}
