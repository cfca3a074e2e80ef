// Git repositories as build contexts — the main context (`kiln build https://…/repo.git#ref:dir`)
// and named ones (`--build-context NAME=<git url>`) — read from the URL as BuildKit's dockerui reads
// them (fragment `#ref:subdir` and the query options ADD takes), through the same git source op as
// ADD, so that a context is cached by the commit its ref resolves to.
import { git as gitSource, type State } from "../../../llb/builder.js";
import { parseGitRef } from "./git-ref.js";

export interface GitContextOptions {
  /** The step name progress shows for the checkout. */
  readonly description: string;
  /** Keep `.git` in the checkout (BUILDKIT_CONTEXT_KEEP_GIT_DIR, or `?keep-git-dir=` in the URL). */
  readonly keepGitDir?: boolean;
}

/** Thrown for a context URL that looks like a git repository but cannot be used as one. */
export class GitContextUrlError extends Error {
  override name = "GitContextUrlError";
}

/** Whether a context argument names a git repository rather than a directory or an HTTP file. */
export function isGitContext(url: string): boolean {
  const r = parseGitRef(url);
  return r.ok && !r.ref.indistinguishableFromLocal;
}

/** The checkout of a git context URL as an LLB state: the ref's tree, or only its subdir. */
export function gitContextState(url: string, opts: GitContextOptions): State {
  const r = parseGitRef(url);
  if (!r.ok)
    throw new GitContextUrlError(
      `invalid git context ${JSON.stringify(url)}: ${r.error ?? "not a git repository URL"} (expected e.g. https://host/repo.git#ref:subdir or git@host:repo.git)`,
    );
  const ref = r.ref;
  return gitSource(ref.remote, "", {
    description: opts.description,
    ref: ref.ref || undefined,
    subdir: ref.subdir || undefined,
    keepGitDir: ref.keepGitDir ?? opts.keepGitDir ?? false,
    checksum: ref.checksum || undefined,
    skipSubmodules: ref.submodules === false || undefined,
    fetchByCommit: ref.fetchByCommit || undefined,
    mtime: ref.mtime,
  });
}
