// The content part of a copy action's cache key: the checksum of exactly what the copy would
// take from its source, selected the same way the copy selects it.
import { type ContentChecksumOptions, contentChecksum } from "../../fs/checksum.js";
import type { CopyAction } from "../../llb/ops.js";
import type { Digest } from "../../oci/digest.js";
import { checkRequiredPaths, copySelection } from "./copy.js";

export async function copySourceChecksum(
  action: CopyAction,
  srcRoot: string,
  hashing: Pick<ContentChecksumOptions, "fileHashCache" | "filesReplacedNotModified"> = {},
): Promise<Digest> {
  const selection = copySelection(action);
  await checkRequiredPaths(srcRoot, action.requiredPaths);
  const options: ContentChecksumOptions = {
    path: selection.src,
    wildcard: action.allowWildcard && !action.parents,
    allowEmptyWildcard: action.allowEmptyWildcard,
    followSymlink: action.followSymlink,
    includePatterns: selection.includePatterns,
    excludePatterns: selection.excludePatterns,
    ...hashing,
  };
  return contentChecksum(srcRoot, options);
}
