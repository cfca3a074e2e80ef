// The engine daemon's gRPC server: serves a BuildEngine on a unix socket (mode 0600: only its
// owner may drive the engine) and/or on TCP with mutual TLS (clients must present a certificate
// signed by the given CA). Closing stops accepting, cancels running builds and waits for them.

import { chmod, lstat, mkdir, rename, rm, stat } from "node:fs/promises";
import { createConnection } from "node:net";
import { hostname } from "node:os";
import { dirname } from "node:path";
import * as grpc from "@grpc/grpc-js";
import type { BuildEngine, EngineInfo } from "../engine/types.js";
import { type BuildCall, serveBuildCall } from "./build-call.js";
import type { DaemonLog } from "./build-log.js";
import { infoToWire, platformToWire, usageToWire } from "./build-wire.js";
import {
  engineServiceClient,
  MAX_MESSAGE_BYTES,
  type WirePruneRequest,
  type WirePruneResponse,
  type WireWorkerRecord,
} from "./engine-proto.js";

/** PEM contents. */
export interface TlsMaterial {
  readonly ca: Buffer | string;
  readonly cert: Buffer | string;
  readonly key: Buffer | string;
}

export interface ListenOptions {
  readonly unix?: string;
  readonly tcp?: { readonly host: string; readonly port: number; readonly tls: TlsMaterial };
}

export interface EngineServer {
  /** The socket path, when listening on one. */
  readonly unixPath?: string;
  /** The bound TCP port (the real one when 0 was asked for). */
  readonly tcpPort?: number;
  /** Stops accepting, cancels running builds and waits up to `graceMs` for them to report. */
  close(graceMs?: number): Promise<void>;
}

function pem(value: Buffer | string): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(value);
}

/** The one worker this engine has, described from its info as BuildKit's ListWorkers does. */
export function workerRecord(info: EngineInfo): WireWorkerRecord {
  const host = hostname();
  return {
    id: host,
    labels: {
      "kiln.worker.executor": "oci",
      "kiln.worker.snapshotter": info.snapshotter,
      "kiln.worker.hostname": host,
    },
    platforms: [...info.nativePlatforms, ...info.emulatedPlatforms].map(platformToWire),
    gcPolicy: infoToWire(info).gcPolicy,
  };
}

function unary<Req, Res>(work: (request: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    work(call.request).then(
      (response) => callback(null, response),
      (err: unknown) =>
        callback({ code: grpc.status.INTERNAL, details: err instanceof Error ? err.message : String(err) }),
    );
  };
}

function bind(server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port))),
  );
}

/** Whether something accepts connections on the unix socket `path`. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
}

/**
 * Binds the socket under a temporary name, restricts it to its owner, then renames it into place,
 * so there is no moment at which others could connect.
 */
async function bindUnixSocket(server: grpc.Server, path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const existing = await lstat(path).catch(() => undefined);
  if (existing) {
    if (!existing.isSocket())
      throw new Error(`cannot listen on ${path}: a file that is not a socket is in the way`);
    if (await socketAnswers(path))
      throw new Error(`cannot listen on ${path}: another kilnd is already serving it`);
    await rm(path, { force: true });
  }
  const staging = `${path}.${process.pid}.tmp`;
  await rm(staging, { force: true });
  await bind(server, `unix:${staging}`, grpc.ServerCredentials.createInsecure());
  await chmod(staging, 0o600);
  await rename(staging, path);
}

export interface ServeOptions {
  /** Where the daemon's info lines about the builds it serves go (none: not logged). */
  readonly log?: DaemonLog;
}

export async function serveEngine(
  engine: BuildEngine,
  listen: ListenOptions,
  opts: ServeOptions = {},
): Promise<EngineServer> {
  if (!listen.unix && !listen.tcp)
    throw new Error("nothing to listen on: give a unix socket path or a TCP address");
  const server = new grpc.Server({
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
  });
  const shutdown = new AbortController();
  const builds = new Set<Promise<void>>();
  server.addService(engineServiceClient().service, {
    Build: (call: BuildCall) => {
      const served = serveBuildCall(engine, call, shutdown.signal, opts.log);
      builds.add(served);
      served.finally(() => builds.delete(served));
    },
    Info: unary(async () => infoToWire(await engine.info())),
    DiskUsage: unary(async (req: { filters?: string[] }) => ({
      records: (await engine.diskUsage(req.filters ?? [])).map(usageToWire),
    })),
    Prune: unary(async (req: WirePruneRequest): Promise<WirePruneResponse> => {
      const r = await engine.prune({ all: req.all, filters: req.filters, keepStorage: req.keepStorage });
      return { reclaimedBytes: r.reclaimedBytes, removed: r.removed };
    }),
    ListWorkers: unary(async () => ({ workers: [workerRecord(await engine.info())] })),
  });

  let unixPath: string | undefined;
  let unixIno: number | undefined;
  let tcpPort: number | undefined;
  try {
    if (listen.unix) {
      await bindUnixSocket(server, listen.unix);
      unixPath = listen.unix;
      unixIno = (await stat(unixPath)).ino;
    }
    if (listen.tcp) {
      const { host, port, tls } = listen.tcp;
      const credentials = grpc.ServerCredentials.createSsl(
        pem(tls.ca),
        [{ cert_chain: pem(tls.cert), private_key: pem(tls.key) }],
        true, // clients must present a certificate signed by the CA
      );
      tcpPort = await bind(server, `${host.includes(":") ? `[${host}]` : host}:${port}`, credentials);
    }
  } catch (err) {
    server.forceShutdown();
    if (unixPath) await rm(unixPath, { force: true });
    throw err;
  }

  let closing: Promise<void> | undefined;
  const close = (graceMs = 10_000): Promise<void> =>
    (closing ??= (async () => {
      shutdown.abort();
      const drained = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      const timedOut = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([Promise.all([drained, ...builds]), timedOut]);
      server.forceShutdown();
      // Remove the socket only if it is still ours (a new daemon may already have replaced it).
      if (unixPath && (await stat(unixPath).catch(() => undefined))?.ino === unixIno)
        await rm(unixPath, { force: true });
    })());
  return { unixPath, tcpPort, close };
}
