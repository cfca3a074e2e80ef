// Runs `kiln build` from the client's side: prepares the context (context-source.ts), picks the
// builder's nodes, opens a session for the client's files, secrets and outputs, and starts the
// build — on one node, or across several (multi-node.ts) when its platforms fall to several.
import type { BuildOutcome } from "../engine/types.js";
import { LocalSession } from "../session/local-session.js";
import { CONTEXT_LOCAL_NAME } from "../session/types.js";
import type { ProgressSink } from "../solver/progress.js";
import type { BuildRequest } from "./build-request.js";
import { prepareBuildContext } from "./context-source.js";
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

export async function runBuild(request: BuildRequest, opts: RunBuildOptions): Promise<BuildOutcome> {
  const env = opts.env ?? process.env;
  const prepared = await prepareBuildContext(request, { stdin: opts.stdin });
  try {
    const req = prepared.request;
    refuseMultiPlatformLoad(req);
    const sessionFor = (r: BuildRequest) => {
      const session = new LocalSession({ request: r, env, stdout: opts.stdout });
      if (prepared.localDir) session.addLocalDir(CONTEXT_LOCAL_NAME, prepared.localDir);
      return session;
    };
    return await opts.nodes(req, async (placement) => {
      const [first, ...others] = placement.nodes;
      if (!first) throw new Error(`builder ${placement.builder} has no node for this build`);
      // --call check|outline|targets reads the Dockerfile only: the first node answers for all.
      let outcome: BuildOutcome;
      try {
        outcome =
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
      } catch (err) {
        // A platform no node builds is the likely cause: its warning goes above the error line.
        if (placement.warnings?.length && err instanceof Error) {
          const lines = err.message.split("\n");
          const last = lines.pop();
          err.message = [...lines, ...placement.warnings.map((w) => `WARNING: ${w}`), last].join("\n");
        }
        throw err;
      }
      if (!placement.warnings?.length) return outcome;
      return { ...outcome, warnings: [...placement.warnings, ...outcome.warnings] };
    });
  } finally {
    await prepared.dispose();
  }
}
