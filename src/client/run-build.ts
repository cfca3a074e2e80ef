// Runs `kiln build` from the client's side: reads the Dockerfile and ignore file, picks the
// builder's nodes, opens a session for the client's files, secrets and outputs, and starts the
// build — on one node, or across several (multi-node.ts) when its platforms fall to several.
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { extractTarToDir } from "../archive/extract-dir.js";
import type { BuildOutcome } from "../engine/types.js";
import { parseIgnoreFile } from "../fs/patterns.js";
import { LocalSession } from "../session/local-session.js";
import { CONTEXT_LOCAL_NAME } from "../session/types.js";
import type { ProgressSink } from "../solver/progress.js";
import type { BuildRequest } from "./build-request.js";
import { type NodePlacement, refuseMultiPlatformLoad, runMultiNodeBuild } from "./multi-node.js";

export interface RunBuildOptions {
  readonly onProgress: ProgressSink;
  readonly signal: AbortSignal;
  readonly stdout: NodeJS.WritableStream;
  readonly stdin?: NodeJS.ReadableStream;
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Opens the selected builder's nodes for this request's platforms and runs `fn` with them (one
   * node, or the nodes the platforms fall to, each with its share); closes them afterwards.
   */
  readonly nodes: <T>(req: BuildRequest, fn: (placement: NodePlacement) => Promise<T>) => Promise<T>;
}

/** The Dockerfile and ignore file, as Buildx finds them: `-f` relative to the working dir. */
export async function readBuildFiles(
  req: BuildRequest,
  contextDir: string | undefined,
): Promise<BuildRequest> {
  let text = req.dockerfileText;
  let name = "Dockerfile";
  let dockerfilePath: string | undefined;
  if (text === undefined) {
    dockerfilePath = req.dockerfilePath
      ? resolve(req.dockerfilePath)
      : contextDir
        ? join(contextDir, "Dockerfile")
        : undefined;
    if (!dockerfilePath) throw new Error("no Dockerfile: give -f PATH when the context is not a directory");
    try {
      text = await readFile(dockerfilePath, "utf8");
    } catch {
      throw new Error(`failed to read dockerfile: open ${dockerfilePath}: no such file or directory`);
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

export async function runBuild(request: BuildRequest, opts: RunBuildOptions): Promise<BuildOutcome> {
  const env = opts.env ?? process.env;
  let stdinDir: string | undefined;
  try {
    let contextDir: string | undefined;
    if (request.contextPath === "-") {
      // A tar context on stdin is unpacked on the client and sent like a directory.
      stdinDir = await mkdtemp(join(tmpdir(), "kiln-stdin-context-"));
      await extractTarToDir(opts.stdin ?? process.stdin, stdinDir);
      contextDir = stdinDir;
    } else if (!/^[a-z]+:\/\/|^git@/.test(request.contextPath)) {
      contextDir = resolve(request.contextPath);
    } else {
      throw new Error(
        `remote contexts (${request.contextPath}) are not supported yet: clone it and build the directory`,
      );
    }
    const req = await readBuildFiles(request, contextDir);
    refuseMultiPlatformLoad(req);
    const sessionFor = (r: BuildRequest) => {
      const session = new LocalSession({ request: r, env, stdout: opts.stdout });
      if (stdinDir) session.addLocalDir(CONTEXT_LOCAL_NAME, stdinDir);
      return session;
    };
    return await opts.nodes(req, async (placement) => {
      const [first, ...others] = placement.nodes;
      if (!first) throw new Error(`builder ${placement.builder} has no node for this build`);
      // --call check|outline|targets reads the Dockerfile only: the first node answers for all.
      const outcome =
        others.length === 0 || req.call !== "build"
          ? await first.engine.build(req, sessionFor(req), {
              onProgress: opts.onProgress,
              signal: opts.signal,
            })
          : await runMultiNodeBuild(req, placement, {
              onProgress: opts.onProgress,
              signal: opts.signal,
              stdout: opts.stdout,
              env,
              session: sessionFor,
            });
      if (!placement.warnings?.length) return outcome;
      return { ...outcome, warnings: [...placement.warnings, ...outcome.warnings] };
    });
  } finally {
    if (stdinDir) await rm(stdinDir, { recursive: true, force: true });
  }
}
