// One Build stream on the daemon: reads the request, runs the engine's build with a session whose
// client is at the other end of the stream, forwards progress, and ends with the outcome or the
// error. The build's AbortSignal fires when the client cancels, half-closes or disconnects, or
// the daemon shuts down.
import type * as grpc from "@grpc/grpc-js";
import type { BuildRequest } from "../client/build-request.js";
import type { BuildEngine } from "../engine/types.js";
import { RemoteSession } from "../session/grpc-engine-session.js";
import { BuildLog, type DaemonLog } from "./build-log.js";
import { outcomeToWire, progressToWire } from "./build-wire.js";
import type {
  BuildClientMessage,
  BuildServerMessage,
  WireBuildErrorKind,
  WireSessionInfo,
} from "./engine-proto.js";

export type BuildCall = grpc.ServerDuplexStream<BuildClientMessage, BuildServerMessage>;

class BuildCancelledError extends Error {
  override readonly name = "BuildCancelledError";
}

function parseRequest(json: Buffer | undefined): BuildRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(json ?? []).toString("utf8"));
  } catch (err) {
    throw new Error(`the build request is not valid JSON: ${(err as Error).message}`);
  }
  if (!parsed || typeof parsed !== "object" || typeof (parsed as BuildRequest).contextPath !== "string") {
    throw new Error(
      "the build request has no contextPath: the client and kilnd may be of incompatible versions",
    );
  }
  return parsed as BuildRequest;
}

/** Serves one build on `call`; resolves when the build has ended and its result was sent. */
export function serveBuildCall(
  engine: BuildEngine,
  call: BuildCall,
  shutdown: AbortSignal,
  log?: DaemonLog,
): Promise<void> {
  return new Promise((resolveServed) => {
    const abort = new AbortController();
    let session: RemoteSession | undefined;
    let started = false;
    let finished = false;
    const holds = new Set<object>();

    const send = (message: BuildServerMessage) => {
      if (!finished && !call.cancelled && !call.writableEnded) call.write(message);
    };
    const cancel = (reason: string) => {
      if (!abort.signal.aborted) abort.abort(new BuildCancelledError(reason));
    };
    const finish = (result: BuildServerMessage | undefined, sessionError: Error) => {
      if (finished) return;
      if (result) send(result);
      finished = true;
      session?.close(sessionError);
      shutdown.removeEventListener("abort", onShutdown);
      if (!call.cancelled && !call.writableEnded) call.end();
      resolveServed();
    };
    const fail = (kind: WireBuildErrorKind, err: Error) =>
      finish({ result: { error: { kind, message: err.message, name: err.name } } }, err);

    const onShutdown = () => cancel("the engine is shutting down");
    if (shutdown.aborted) onShutdown();
    else shutdown.addEventListener("abort", onShutdown, { once: true });

    const begin = (requestJson: Buffer, info: WireSessionInfo) => {
      let request: BuildRequest;
      try {
        request = parseRequest(requestJson);
      } catch (err) {
        return fail("INTERNAL", err as Error);
      }
      session = new RemoteSession(info, {
        send,
        holdInput: () => {
          const hold = {};
          holds.add(hold);
          call.pause();
          return () => {
            if (!holds.delete(hold)) return;
            if (holds.size === 0) call.resume();
          };
        },
      });
      const buildLog = log ? new BuildLog(log, request) : undefined;
      engine
        .build(request, session, {
          onProgress: (e) => {
            buildLog?.progress(e);
            send({ progress: progressToWire(e) });
          },
          signal: abort.signal,
        })
        .then(
          (outcome) => {
            buildLog?.end("finished");
            finish({ result: { outcome: outcomeToWire(outcome) } }, new Error("the build is over"));
          },
          (err: unknown) => {
            const error = err instanceof Error ? err : new Error(String(err));
            buildLog?.end(abort.signal.aborted ? "cancelled" : { failed: error });
            fail(abort.signal.aborted ? "CANCELLED" : "BUILD_FAILED", error);
          },
        );
    };

    call.on("data", (message: BuildClientMessage) => {
      if (finished) return;
      if (!started) {
        started = true;
        if (!("start" in message))
          return fail("INTERNAL", new Error("a build stream must begin with the build request"));
        return begin(message.start.requestJson, message.start.session);
      }
      if ("cancel" in message) return cancel(message.cancel.reason || "the client cancelled the build");
      session?.handle(message);
    });
    call.on("end", () => {
      if (!started)
        return fail("INTERNAL", new Error("the client closed the build stream without a request"));
      cancel("the client closed the build stream");
    });
    call.on("cancelled", () => cancel("the client went away"));
    call.on("error", () => cancel("the build stream broke"));
  });
}
