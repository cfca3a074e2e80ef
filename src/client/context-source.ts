// The build context as the client names it — a directory, `-` (stdin) or a git URL — made ready to
// send, with Buildx's rules for where the Dockerfile comes from: `-f` relative to the working
// directory for a directory context, inside the archive for a tar on stdin, inside the repository
// (read by the engine, which fetches it) for a git context unless `-f` is an absolute client path.
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { isGitContext } from "../frontend/dockerfile/convert/git-context.js";
import { parseIgnoreFile } from "../fs/patterns.js";
import { resolveInRoot } from "../fs/scoped-path.js";
import { parseGitUrl } from "../llb/git-url.js";
import type { BuildRequest } from "./build-request.js";
import { readStdinContext } from "./context-stdin.js";

export type ContextSource =
  | { readonly kind: "directory"; readonly path: string }
  /** A tar archive or a Dockerfile on stdin. */
  | { readonly kind: "stdin" }
  /** A git repository the engine fetches. */
  | { readonly kind: "git"; readonly url: string }
  /** A tarball or Dockerfile at an http(s) URL. */
  | { readonly kind: "http"; readonly url: string };

export function classifyContext(arg: string): ContextSource {
  if (arg === "-") return { kind: "stdin" };
  if (isGitContext(arg)) return { kind: "git", url: arg };
  if (/^https?:\/\//i.test(arg)) return { kind: "http", url: arg };
  return { kind: "directory", path: arg };
}

/** Whether the context is a git repository reached over ssh (Buildx then forwards the default agent). */
export function isGitSshContext(arg: string): boolean {
  if (classifyContext(arg).kind !== "git") return false;
  try {
    return parseGitUrl(arg).scheme === "ssh";
  } catch {
    return false;
  }
}

/** Both the context and the Dockerfile asked of stdin: Buildx's wording. */
export const STDIN_CONFLICT = "invalid argument: can't use stdin for both build context and dockerfile";

/**
 * Reads the Dockerfile and ignore file of a directory context. `-f` is a path on the client
 * (relative to the working directory), or with `dockerfileInStdinArchive` a path inside the
 * archive unpacked into `contextDir`.
 */
export async function readBuildFiles(
  req: BuildRequest,
  contextDir: string | undefined,
  opts: { readonly dockerfileInStdinArchive?: boolean } = {},
): Promise<BuildRequest> {
  let text = req.dockerfileText;
  let name = "Dockerfile";
  let dockerfilePath: string | undefined;
  if (text === undefined) {
    if (opts.dockerfileInStdinArchive && contextDir)
      dockerfilePath = await resolveInRoot(contextDir, req.dockerfilePath ?? "Dockerfile");
    else
      dockerfilePath = req.dockerfilePath
        ? resolve(req.dockerfilePath)
        : contextDir
          ? join(contextDir, "Dockerfile")
          : undefined;
    if (!dockerfilePath) throw new Error("no Dockerfile: give -f PATH when the context is not a directory");
    try {
      text = await readFile(dockerfilePath, "utf8");
    } catch {
      throw new Error(
        opts.dockerfileInStdinArchive
          ? `failed to read dockerfile: ${req.dockerfilePath ?? "Dockerfile"} is not in the context archive on stdin: -f names a file inside the archive`
          : `failed to read dockerfile: open ${dockerfilePath}: no such file or directory`,
      );
    }
    name = req.dockerfilePath ?? "Dockerfile";
  }
  let ignore: string[] = [];
  const candidates = [
    dockerfilePath ? join(dirname(dockerfilePath), `${basename(dockerfilePath)}.dockerignore`) : undefined,
    contextDir ? join(contextDir, ".dockerignore") : undefined,
  ];
  for (const c of candidates) {
    if (c && existsSync(c)) {
      ignore = parseIgnoreFile(await readFile(c, "utf8"));
      break;
    }
  }
  return { ...req, dockerfileText: text, dockerfileName: name, dockerignore: ignore };
}

export interface PreparedContext {
  /** The request with its Dockerfile (unless the engine reads it from a repository). */
  readonly request: BuildRequest;
  /** A directory the client made for the context (stdin), to send as the session's `context`. */
  readonly localDir?: string;
  /** Removes what the client made. */
  dispose(): Promise<void>;
}

async function prepareStdinContext(
  request: BuildRequest,
  stdin: NodeJS.ReadableStream,
): Promise<PreparedContext> {
  if (request.dockerfileText !== undefined) throw new Error(STDIN_CONFLICT);
  const dir = await mkdtemp(join(tmpdir(), "kiln-stdin-context-"));
  const dispose = () => rm(dir, { recursive: true, force: true });
  try {
    const content = await readStdinContext(stdin, dir);
    if (content.kind === "dockerfile") {
      if (request.dockerfilePath !== undefined)
        throw new Error(
          `ambiguous Dockerfile source: stdin is not a tar archive, so it is read as a Dockerfile, and -f names ${request.dockerfilePath} too: give the Dockerfile one way`,
        );
      // `docker build - < Dockerfile`: an empty context.
      return {
        request: { ...request, dockerfileText: content.text, dockerfileName: "Dockerfile", dockerignore: [] },
        localDir: dir,
        dispose,
      };
    }
    return {
      request: await readBuildFiles(request, dir, { dockerfileInStdinArchive: true }),
      localDir: dir,
      dispose,
    };
  } catch (e) {
    await dispose();
    throw e;
  }
}

/** Reads what the client must read of the request's context, and unpacks a context on stdin. */
export async function prepareBuildContext(
  request: BuildRequest,
  opts: { readonly stdin?: NodeJS.ReadableStream } = {},
): Promise<PreparedContext> {
  const none = async () => {};
  const source = classifyContext(request.contextPath);
  switch (source.kind) {
    case "directory":
      return { request: await readBuildFiles(request, resolve(source.path)), dispose: none };
    case "stdin":
      return prepareStdinContext(request, opts.stdin ?? process.stdin);
    case "git": {
      // An absolute -f is the client's own file (Buildx); a relative one is read from the repository.
      const path = request.dockerfilePath;
      if (request.dockerfileText !== undefined || !path || !isAbsolute(path))
        return { request, dispose: none };
      return { request: await readBuildFiles(request, undefined), dispose: none };
    }
    case "http":
      throw new Error(
        `the build context ${source.url} is an HTTP URL, which Kiln does not fetch: download it and pipe it in with \`kiln build - < FILE\` (a tar archive or a Dockerfile), or give a git repository URL ending in .git`,
      );
  }
}
