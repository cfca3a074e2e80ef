// A git repository as the main build context, as BuildKit's Dockerfile frontend takes one: the
// engine checks the repository out through the git source op (cached by the commit the ref
// resolves to), reads the Dockerfile (`-f`, relative to the URL's subdir) and the ignore file from
// the checkout, and builds with the checkout — minus what the ignore file excludes — as context.
import { readFile } from "node:fs/promises";
import { posix } from "node:path";
import type { BuildRequest } from "../client/build-request.js";
import { gitContextState, isGitContext } from "../frontend/dockerfile/convert/git-context.js";
import { parseGoBool } from "../frontend/dockerfile/instructions/mount.js";
import { parseIgnoreFile } from "../fs/patterns.js";
import { isAbsentError, resolveInRoot } from "../fs/scoped-path.js";
import { copy, marshal, type State, scratch } from "../llb/builder.js";
import type { Definition } from "../llb/definition.js";
import type { Snapshotter } from "../snapshot/types.js";
import type { SolveOptions, Solver } from "../solver/solver.js";
import { redactCredentials } from "../source/git-command.js";

/**
 * Solves a definition ahead of the build and lets the frontend read the result's files (BuildKit's
 * ReadFile on a solved reference); the result stays in the cache for the build proper.
 */
export type ReadSolvedFiles = <T>(def: Definition, read: (root: string) => Promise<T>) => Promise<T>;

/** The ReadSolvedFiles of one build: its solver, worker and cancellation. */
export function solvedFileReader(
  solver: Solver,
  snapshotter: Snapshotter,
  solve: SolveOptions,
): ReadSolvedFiles {
  return async (def, read) => {
    const out = await solver.solve(def, solve);
    switch (out.kind) {
      case "snapshot":
        return snapshotter.withMounted(out.id, read);
      case "directory":
        return read(out.path);
      case "scratch":
        throw new Error("the context to read files from is empty");
    }
  };
}

/** Whether the request's main context is a git repository the engine fetches. */
export function isGitContextRequest(req: BuildRequest): boolean {
  return isGitContext(req.contextPath);
}

export interface GitBuildContext {
  /** The checkout as the Dockerfile's context: ignored files already left out. */
  readonly state: State;
  readonly dockerfile: { readonly name: string; readonly text: string };
  readonly dockerignore: readonly string[];
}

/** A file of the checkout, or undefined when there is none; symlinks cannot lead out of it. */
async function readInCheckout(root: string, path: string): Promise<string | undefined> {
  try {
    return await readFile(await resolveInRoot(root, path), "utf8");
  } catch (e) {
    if (isAbsentError(e) || (e as NodeJS.ErrnoException).code === "EISDIR") return undefined;
    throw e;
  }
}

/**
 * Fetches the request's git context and reads its Dockerfile and ignore file. A Dockerfile the
 * client sent (`-f -`, or `-f` with an absolute path on the client) is used instead of the
 * repository's.
 */
export async function loadGitContext(
  req: BuildRequest,
  readSolved: ReadSolvedFiles,
): Promise<GitBuildContext> {
  const url = redactCredentials(req.contextPath);
  const checkout = gitContextState(req.contextPath, {
    description: `[internal] load git source ${url}`,
    keepGitDir: parseGoBool(req.buildArgs.BUILDKIT_CONTEXT_KEEP_GIT_DIR ?? "") ?? false,
  });
  const name = req.dockerfileText === undefined ? (req.dockerfilePath ?? "Dockerfile") : undefined;
  const path = name === undefined ? undefined : posix.join("/", name);
  const found = await readSolved(marshal(checkout), async (root) => {
    let text = path === undefined ? undefined : await readInCheckout(root, path);
    // As BuildKit: a default Dockerfile may also be spelled in lower case.
    if (text === undefined && req.dockerfilePath === undefined && path !== undefined)
      text = await readInCheckout(root, posix.join(posix.dirname(path), "dockerfile"));
    const ignorePaths = [...(path ? [`${path}.dockerignore`] : []), "/.dockerignore"];
    let ignore: string | undefined;
    for (const p of ignorePaths) {
      ignore = await readInCheckout(root, p);
      if (ignore !== undefined) break;
    }
    return { text, ignore };
  });
  const text = req.dockerfileText ?? found.text;
  if (text === undefined)
    throw new Error(
      `failed to read dockerfile: ${name} not found in git context ${url}: give -f the Dockerfile's path relative to the context's directory in the repository`,
    );
  // A client-side Dockerfile (absolute -f) brings its own `<Dockerfile>.dockerignore`, if any.
  const dockerignore = req.dockerignore?.length
    ? req.dockerignore
    : found.ignore === undefined
      ? []
      : parseIgnoreFile(found.ignore);
  const state =
    dockerignore.length === 0
      ? checkout
      : scratch().file(copy(checkout, "/", "/", { excludePatterns: dockerignore, dirCopyContents: true }), {
          description: `[internal] apply .dockerignore to ${url}`,
        });
  return {
    state,
    dockerfile: { name: req.dockerfileName ?? name ?? "Dockerfile", text },
    dockerignore,
  };
}
