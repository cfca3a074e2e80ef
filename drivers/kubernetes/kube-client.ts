// A small client of the Kubernetes API: JSON requests over HTTP(S) with the kubeconfig's TLS
// material and credentials, and pod exec over a WebSocket speaking the `v5.channel.k8s.io` /
// `v4.channel.k8s.io` subprotocols: every message is one channel byte (0 stdin, 1 stdout,
// 2 stderr, 3 the exec's final Status, 255 close-a-channel in v5) followed by its bytes. The ws
// package loads on the first exec, so commands that never exec do not pay for it.
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import { request as httpsRequest, type RequestOptions } from "node:https";
import { Duplex } from "node:stream";
import type WebSocket from "ws";
import type { Status } from "./kube-objects.js";
import { type KubeTarget, runExecPlugin } from "./kubeconfig.js";

const CHANNEL_STDIN = 0;
const CHANNEL_STDOUT = 1;
const CHANNEL_STDERR = 2;
const CHANNEL_STATUS = 3;
const CHANNEL_CLOSE = 255;
export const EXEC_PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io"] as const;

/** A request the API server answered with an error Status. */
export class KubeApiError extends Error {
  override name = "KubeApiError";
  constructor(
    readonly statusCode: number,
    readonly reason: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeApiError && err.statusCode === 404;
}

export function isAlreadyExists(err: unknown): boolean {
  return err instanceof KubeApiError && err.statusCode === 409;
}

interface Connection {
  readonly headers: Record<string, string>;
  readonly tls: Pick<RequestOptions, "ca" | "cert" | "key" | "rejectUnauthorized" | "servername">;
}

export interface RequestOptionsForKube {
  readonly body?: unknown;
  /** For PATCH: application/merge-patch+json, application/strategic-merge-patch+json. */
  readonly contentType?: string;
  readonly query?: Readonly<Record<string, string | readonly string[]>>;
}

/** How an exec'd process ended, from the Status the server sends on channel 3. */
export interface ExecExit {
  readonly exitCode: number;
  /** The server's message when the exec failed for another reason than the exit code. */
  readonly message?: string;
}

export class KubeApiClient {
  private connectionCache?: Promise<Connection>;

  constructor(
    readonly target: KubeTarget,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  private connection(): Promise<Connection> {
    this.connectionCache ??= (async () => {
      const t = this.target;
      const headers: Record<string, string> = {};
      let { cert, key } = t.tls;
      const c = t.credentials;
      if (c.kind === "token") headers.authorization = `Bearer ${c.token}`;
      else if (c.kind === "basic")
        headers.authorization = `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
      else if (c.kind === "exec") {
        const cred = await runExecPlugin(c.plugin, c.baseDir, this.env);
        if (cred.token) headers.authorization = `Bearer ${cred.token}`;
        cert = cred.cert ?? cert;
        key = cred.key ?? key;
      }
      return {
        headers,
        tls: {
          ca: t.tls.ca,
          cert,
          key,
          rejectUnauthorized: !t.tls.insecure,
          ...(t.tls.servername ? { servername: t.tls.servername } : {}),
        },
      };
    })();
    return this.connectionCache;
  }

  /** The URL of an API path; a server URL with a path (behind a proxy) prefixes it. */
  url(path: string, query: RequestOptionsForKube["query"] = {}): URL {
    const base = this.target.server;
    const url = new URL(`${base.pathname.replace(/\/$/, "")}${path}`, base);
    for (const [k, v] of Object.entries(query)) {
      for (const one of typeof v === "string" ? [v] : v) url.searchParams.append(k, one);
    }
    return url;
  }

  private unreachable(err: Error): Error {
    return new Error(
      `cannot reach the Kubernetes API server at ${this.target.server.origin} (${this.target.source}): ${err.message}`,
    );
  }

  async request<T>(method: string, path: string, opts: RequestOptionsForKube = {}): Promise<T> {
    const conn = await this.connection();
    const url = this.url(path, opts.query);
    const body = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const headers: OutgoingHttpHeaders = { ...conn.headers, accept: "application/json" };
    if (body) {
      headers["content-type"] = opts.contentType ?? "application/json";
      headers["content-length"] = body.length;
    }
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = send(url, { method, headers, ...(url.protocol === "https:" ? conn.tls : {}) }, resolve);
      req.on("error", (err) => reject(this.unreachable(err)));
      req.end(body);
    });
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString();
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return (text ? JSON.parse(text) : undefined) as T;
    throw apiError(status, text, `${method} ${url.pathname}`, this.target.source);
  }

  /**
   * Runs `command` in a pod's container; the returned stream is its stdin (written) and stdout
   * (read). It fails with the process's stderr when the process exits non-zero without output.
   */
  async exec(
    namespace: string,
    pod: string,
    container: string,
    command: readonly string[],
    failOnSilentExit = true,
  ): Promise<ExecStream> {
    const { default: WebSocketClient } = await import("ws");
    const conn = await this.connection();
    const url = this.url(`/api/v1/namespaces/${namespace}/pods/${pod}/exec`, {
      container,
      command,
      stdin: "true",
      stdout: "true",
      stderr: "true",
    });
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocketClient(url, [...EXEC_PROTOCOLS], { headers: conn.headers, ...conn.tls });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", (err) => reject(this.unreachable(err)));
      ws.once("unexpected-response", (_req, res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          reject(
            apiError(
              res.statusCode ?? 0,
              Buffer.concat(chunks).toString(),
              `exec in pod ${namespace}/${pod}`,
              this.target.source,
            ),
          ),
        );
        res.on("error", reject);
      });
    });
    return new ExecStream(ws, failOnSilentExit);
  }

  /** Runs `command` in a pod with no input and collects its output. */
  async execCollect(
    namespace: string,
    pod: string,
    container: string,
    command: readonly string[],
  ): Promise<ExecExit & { readonly stdout: string; readonly stderr: string }> {
    const stream = await this.exec(namespace, pod, container, command, false);
    stream.end();
    const out: Buffer[] = [];
    for await (const chunk of stream) out.push(chunk as Buffer);
    const exit = await stream.exit;
    return { ...exit, stdout: Buffer.concat(out).toString(), stderr: stream.stderr };
  }
}

function apiError(status: number, text: string, what: string, source: string): KubeApiError {
  let parsed: Partial<Status> | undefined;
  try {
    parsed = JSON.parse(text) as Partial<Status>;
  } catch {
    // Not a Status (a proxy's page): the text itself says what went wrong.
  }
  const detail = parsed?.message ?? (text.trim().slice(0, 200) || `HTTP ${status}`);
  const hint =
    status === 401
      ? ` (the credentials of ${source} were refused)`
      : status === 403
        ? ` (the user of ${source} lacks the permission)`
        : "";
  return new KubeApiError(status, parsed?.reason, `Kubernetes API ${what}: ${detail}${hint}`);
}

/** A finished exec's Status as an exit code (NonZeroExitCode carries it as a cause). */
export function execExitOf(status: Status | undefined): ExecExit {
  if (!status || status.status === "Success") return { exitCode: 0 };
  const cause = status.details?.causes?.find((c) => c.reason === "ExitCode");
  if (status.reason === "NonZeroExitCode" && cause?.message && /^\d+$/.test(cause.message))
    return { exitCode: Number(cause.message) };
  return { exitCode: -1, message: status.message ?? "exec failed" };
}

export class ExecStream extends Duplex {
  /** The last 4 KiB the process wrote to stderr. */
  stderr = "";
  readonly exit: Promise<ExecExit>;
  private status?: Status;
  private sawOutput = false;

  /**
   * @param failOnSilentExit fail the stream when the process exits non-zero without output
   *   (a dial that never reached the engine); off to just collect the output.
   */
  constructor(
    private readonly ws: WebSocket,
    failOnSilentExit: boolean,
  ) {
    super();
    let settle: (exit: ExecExit) => void = () => {};
    this.exit = new Promise((resolve) => {
      settle = resolve;
    });
    ws.on("message", (data: Buffer | ArrayBuffer | Buffer[]) => {
      const msg = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
      if (msg.length === 0) return;
      const payload = msg.subarray(1);
      switch (msg[0]) {
        case CHANNEL_STDOUT:
          // Servers open each channel with an empty message.
          if (payload.length === 0) return;
          this.sawOutput = true;
          if (!this.push(Buffer.from(payload))) ws.pause();
          return;
        case CHANNEL_STDERR:
          this.stderr = (this.stderr + payload.toString()).slice(-4096);
          return;
        case CHANNEL_STATUS:
          if (payload.length) this.status = JSON.parse(payload.toString()) as Status;
          return;
      }
    });
    ws.on("close", () => {
      const exit = execExitOf(this.status);
      settle(exit);
      if (failOnSilentExit && exit.exitCode !== 0 && !this.sawOutput) {
        const why = this.stderr.trim() || exit.message || `exit code ${exit.exitCode}`;
        this.destroy(new Error(why));
      } else this.push(null);
    });
    ws.on("error", (err) => {
      settle({ exitCode: -1, message: err.message });
      this.destroy(err);
    });
  }

  /** The subprotocol the server chose. */
  get protocol(): string {
    return this.ws.protocol;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.ws.send(Buffer.concat([Buffer.from([CHANNEL_STDIN]), chunk]), (err) => done(err ?? null));
  }

  override _final(done: (err?: Error | null) => void): void {
    // Only v5 can close stdin alone; under v4 the process sees EOF when the whole exec ends.
    if (this.ws.protocol === "v5.channel.k8s.io" && this.ws.readyState === this.ws.OPEN)
      this.ws.send(Buffer.from([CHANNEL_CLOSE, CHANNEL_STDIN]), (err) => done(err ?? null));
    else done();
  }

  override _read(): void {
    if (this.ws.isPaused) this.ws.resume();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) this.ws.close();
    done(err);
  }
}
