// The engine API's client: a BuildEngine whose engine runs in a kilnd reached over a unix socket,
// TCP with mutual TLS, or any byte stream a driver can open. A build's session callbacks are
// answered from the caller's BuildSession over the same stream.
import { isIP } from "node:net";
import * as grpc from "@grpc/grpc-js";
import type { UsageRecord } from "../cache/usage-filter.js";
import type { BuildEngine, BuildOutcome, EngineInfo, PruneOptions } from "../engine/types.js";
import type { Platform } from "../oci/platform.js";
import {
  infoFromWire,
  outcomeFromWire,
  platformFromWire,
  progressFromWire,
  usageFromWire,
} from "../server/build-wire.js";
import {
  type BuildClientMessage,
  type BuildServerMessage,
  engineServiceClient,
  MAX_MESSAGE_BYTES,
  type MessageSink,
  type WireBuildResult,
  type WireInfo,
  type WirePruneResponse,
  type WireUsageRecord,
  type WireWorkerRecord,
} from "../server/engine-proto.js";
import { describeSession, SessionResponder } from "../session/grpc-client-session.js";
import type { BuildSession } from "../session/types.js";
import type { ProgressSink } from "../solver/progress.js";
import type { BuildRequest } from "./build-request.js";
import { type DuplexFactory, DuplexRelay } from "./duplex-relay.js";
import { RemoteBuildError } from "./remote-build-error.js";
import { probeMutualTls } from "./tls-probe.js";

/** PEM contents of the client's certificate and key, and of the CA that signed the daemon's. */
export interface ClientTls {
  readonly ca: Buffer | string;
  readonly cert: Buffer | string;
  readonly key: Buffer | string;
  /** The name the daemon's certificate must carry, when it differs from the host dialled. */
  readonly serverName?: string;
}

export type EngineTarget =
  | { readonly unix: string }
  | { readonly tcp: { readonly host: string; readonly port: number }; readonly tls: ClientTls }
  | { readonly duplex: DuplexFactory };

export interface ConnectOptions {
  /** How long to wait for the engine to answer before giving up (default 20 s). */
  readonly timeoutMs?: number;
}

export interface WorkerInfo {
  readonly id: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly platforms: readonly Platform[];
}

/** After a cancel, how long the engine gets to report before the call is dropped. */
const CANCEL_GRACE_MS = 5_000;

type EngineClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

let ipServerNameWarningMuted = false;

/**
 * grpc-js puts the dialled host in TLS's server name even when it is an IP address, and Node then
 * prints a deprecation warning (DEP0123) to the user of every process that dials an engine by IP.
 * No server name is sent for an IP anyway; the certificate is still checked against the address.
 * Only that warning is dropped.
 */
function muteIpServerNameWarning(): void {
  if (ipServerNameWarningMuted) return;
  ipServerNameWarningMuted = true;
  const emitWarning = process.emitWarning;
  process.emitWarning = function (this: NodeJS.Process, warning: string | Error, ...rest: unknown[]) {
    const opt = rest[0];
    const code = typeof opt === "object" && opt !== null ? (opt as { code?: string }).code : rest[1];
    if (code === "DEP0123") return;
    return (emitWarning as (...args: unknown[]) => void).call(this, warning, ...rest);
  } as typeof process.emitWarning;
}

function pem(value: Buffer | string): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(value);
}

function describeTarget(target: EngineTarget): string {
  if ("unix" in target) return `unix://${target.unix}`;
  if ("tcp" in target) return `tcp://${target.tcp.host}:${target.tcp.port}`;
  return "its stream";
}

export class RemoteEngine implements BuildEngine {
  /** Builds in flight: closing the engine cancels them, as a client that goes away would. */
  private readonly calls = new Set<grpc.ClientDuplexStream<BuildClientMessage, BuildServerMessage>>();

  private constructor(
    private readonly client: EngineClient,
    private readonly where: string,
    private readonly relay?: DuplexRelay,
  ) {}

  static async connect(target: EngineTarget, opts: ConnectOptions = {}): Promise<RemoteEngine> {
    const Client = engineServiceClient();
    const options: grpc.ClientOptions = {
      "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
      "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
    };
    let relay: DuplexRelay | undefined;
    let client: EngineClient;
    if ("unix" in target) {
      client = new Client(
        `unix:${target.unix}`,
        grpc.credentials.createInsecure(),
        options,
      ) as unknown as EngineClient;
    } else if ("tcp" in target) {
      const { host, port } = target.tcp;
      const tls = target.tls;
      if (isIP(tls.serverName ?? host)) muteIpServerNameWarning();
      if (tls.serverName) options["grpc.ssl_target_name_override"] = tls.serverName;
      const credentials = grpc.credentials.createSsl(pem(tls.ca), pem(tls.key), pem(tls.cert));
      client = new Client(
        `${host.includes(":") ? `[${host}]` : host}:${port}`,
        credentials,
        options,
      ) as unknown as EngineClient;
    } else {
      relay = await DuplexRelay.open(target.duplex);
      client = new Client(
        relay.address,
        grpc.credentials.createInsecure(),
        options,
      ) as unknown as EngineClient;
    }
    const where = describeTarget(target);
    // Our own timer, not waitForReady's deadline: grpc-js re-arms its deadline timer after the
    // channel is closed, which kept a refused client's process alive for the whole timeout.
    let timer: NodeJS.Timeout | undefined;
    const ready = new Promise<void>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error("Failed to connect before the deadline")),
        opts.timeoutMs ?? 20_000,
      );
      client.waitForReady(Number.POSITIVE_INFINITY, (err) => (err ? reject(err) : resolve()));
    });
    ready.catch(() => {}).finally(() => clearTimeout(timer));
    // gRPC retries a refused TLS handshake until the deadline and then says only that; one plain
    // handshake beside it tells at once whether the engine refused this client's certificate.
    const refused =
      "tcp" in target
        ? probeMutualTls({
            ...target.tcp,
            ca: pem(target.tls.ca),
            cert: pem(target.tls.cert),
            key: pem(target.tls.key),
            serverName: target.tls.serverName,
          }).then((reason) => {
            if (reason) throw new Error(reason);
            return ready;
          })
        : ready;
    try {
      await Promise.race([ready, refused]);
    } catch (err) {
      clearTimeout(timer);
      client.close();
      const cause = relay?.lastError?.message ?? (err as Error).message;
      await relay?.close();
      throw new Error(`cannot reach the engine at ${where}: ${cause}`);
    }
    return new RemoteEngine(client, where, relay);
  }

  async info(): Promise<EngineInfo> {
    return infoFromWire(await this.unary<WireInfo>("Info", {}));
  }

  async diskUsage(filters: readonly string[] = []): Promise<UsageRecord[]> {
    const r = await this.unary<{ records: WireUsageRecord[] }>("DiskUsage", { filters: [...filters] });
    return (r.records ?? []).map(usageFromWire);
  }

  async prune(opts: PruneOptions): Promise<{ reclaimedBytes: number; removed: number }> {
    const request: Record<string, unknown> = { all: opts.all ?? false, filters: [...(opts.filters ?? [])] };
    if (opts.keepStorage !== undefined) request.keepStorage = opts.keepStorage;
    const r = await this.unary<WirePruneResponse>("Prune", request);
    return { reclaimedBytes: r.reclaimedBytes, removed: r.removed };
  }

  async listWorkers(): Promise<WorkerInfo[]> {
    const r = await this.unary<{ workers: WireWorkerRecord[] }>("ListWorkers", {});
    return (r.workers ?? []).map((w) => ({
      id: w.id,
      labels: w.labels ?? {},
      platforms: (w.platforms ?? []).map(platformFromWire),
    }));
  }

  build(
    req: BuildRequest,
    session: BuildSession,
    opts: { onProgress?: ProgressSink; signal?: AbortSignal } = {},
  ): Promise<BuildOutcome> {
    return new Promise<BuildOutcome>((resolve, reject) => {
      const call = (
        this.client.Build as () => grpc.ClientDuplexStream<BuildClientMessage, BuildServerMessage>
      ).call(this.client);
      this.calls.add(call);
      let settled = false;
      let cancelTimer: NodeJS.Timeout | undefined;
      const drainWaiters: (() => void)[] = [];
      const releaseDrainWaiters = () => {
        for (const w of drainWaiters.splice(0)) w();
      };
      const sink: MessageSink<BuildClientMessage> = {
        send: (message) => (settled || call.writableEnded ? true : call.write(message)),
        drained: () => new Promise<void>((r) => (settled ? r() : drainWaiters.push(r))),
      };
      call.on("drain", releaseDrainWaiters);
      const responder = new SessionResponder(session, sink);

      const onAbort = () => {
        if (settled) return;
        sink.send({ cancel: { reason: "the client cancelled the build" } });
        call.end();
        cancelTimer = setTimeout(() => call.cancel(), CANCEL_GRACE_MS);
      };
      const settle = (outcome: BuildOutcome | undefined, err?: Error) => {
        if (settled) return;
        settled = true;
        this.calls.delete(call);
        opts.signal?.removeEventListener("abort", onAbort);
        if (cancelTimer) clearTimeout(cancelTimer);
        responder.close();
        releaseDrainWaiters();
        if (!call.writableEnded) call.end();
        if (err) reject(err);
        else resolve(outcome!);
      };
      const onResult = (result: WireBuildResult) => {
        if ("outcome" in result) return settle(outcomeFromWire(result.outcome));
        const e = result.error;
        const kind =
          e.kind === "BUILD_FAILED" ? "build-failed" : e.kind === "CANCELLED" ? "cancelled" : "internal";
        settle(undefined, new RemoteBuildError(kind, e.message, e.name || undefined));
      };

      call.on("data", (message: BuildServerMessage) => {
        if (settled) return;
        if ("progress" in message) {
          const event = progressFromWire(message.progress);
          if (event) opts.onProgress?.(event);
        } else if ("result" in message) {
          onResult(message.result);
        } else {
          responder.handle(message);
        }
      });
      call.on("error", (err: grpc.ServiceError) => {
        if (err.code === grpc.status.CANCELLED) {
          return settle(undefined, new RemoteBuildError("cancelled", "the build was cancelled"));
        }
        settle(
          undefined,
          new RemoteBuildError(
            "internal",
            `lost the connection to the engine at ${this.where}: ${err.details || err.message}`,
          ),
        );
      });
      call.on("end", () =>
        settle(
          undefined,
          new RemoteBuildError("internal", `the engine at ${this.where} ended the build without a result`),
        ),
      );

      sink.send({
        start: { requestJson: Buffer.from(JSON.stringify(req)), session: describeSession(session, req) },
      });
      if (opts.signal?.aborted) onAbort();
      else opts.signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  async close(): Promise<void> {
    for (const call of this.calls) call.cancel();
    this.client.close();
    await this.relay?.close();
  }

  private unary<Res>(method: string, request: object): Promise<Res> {
    return new Promise((resolve, reject) => {
      const fn = this.client[method] as (
        req: object,
        cb: (err: grpc.ServiceError | null, res: Res) => void,
      ) => void;
      fn.call(this.client, request, (err, res) => {
        if (err)
          reject(new Error(`engine at ${this.where}: ${method} failed: ${err.details || err.message}`));
        else resolve(res);
      });
    });
  }
}

/** Connects to the engine at `target`; resolves once it answers. */
export function connectEngine(target: EngineTarget, opts?: ConnectOptions): Promise<RemoteEngine> {
  return RemoteEngine.connect(target, opts);
}
