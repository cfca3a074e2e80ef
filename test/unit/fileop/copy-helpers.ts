// Builders for copy actions in tests, defaulting to what a Dockerfile COPY produces.
import type { CopyAction } from "../../../src/llb/ops.js";

export function copyAction(fields: Partial<CopyAction> & Pick<CopyAction, "src" | "dest">): CopyAction {
  return {
    type: "copy",
    followSymlink: true,
    dirCopyContents: true,
    attemptUnpackDockerCompatibility: false,
    createDestPath: true,
    allowWildcard: true,
    allowEmptyWildcard: false,
    ...fields,
  };
}
