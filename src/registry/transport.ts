// HTTP(S) to registries: keep-alive agents with per-host TLS (system roots + certs.d CAs and client
// certificates), the HTTPS→HTTP decision for insecure and loopback hosts, redirects and retries.
import http, { type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";
import { rootCertificates } from "node:tls";
import { DEFAULT_CERTS_DIR, loadRegistryTlsFiles } from "./certs-dir.js";
import { RegistryError, RegistryTlsError } from "./errors.js";
import { isLoopbackHost, matchesInsecureList } from "./hosts.js";

export interface RetryPolicy {
  /** Total tries, including the first. */
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 250, maxDelayMs: 8000 };

export interface RetryNotice {
  readonly method: string;
  readonly url: string;
  /** The try that failed, 1-based. */
  readonly attempt: number;
  /** `HTTP 503`, `ECONNRESET`, … */
  readonly reason: string;
  readonly delayMs: number;
}

export interface TransportOptions {
  /** Registries (`host[:port]`, bare hosts, IPv4 CIDRs) allowed over plain HTTP and with unverified TLS. */
  readonly insecureRegistries?: readonly string[];
  /** Roots of per-host certificate directories; `/etc/docker/certs.d` by default. */
  readonly certsDirs?: readonly string[];
  readonly userAgent?: string;
  readonly retry?: Partial<RetryPolicy>;
  /** Idle time on a socket after which a request fails with ETIMEDOUT (and is retried). */
  readonly socketTimeoutMs?: number;
  readonly onRetry?: (notice: RetryNotice) => void;
}

export interface HttpRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers?: Record<string, string>;
  /** A buffer, or a factory so that the body can be sent again on a retry or a 307. */
  readonly body?: Buffer | (() => Readable);
  /** Used by the error messages: the registry as the user named it. */
  readonly registry: string;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The URL that answered, after redirects (Location headers resolve against it). */
  readonly url: URL;
  readonly body: IncomingMessage;
}

const RETRYABLE_ERRNO = new Set(["ECONNRESET", "EPIPE", "ETIMEDOUT", "ECONNABORTED", "EAI_AGAIN"]);
const TLS_PROTOCOL_ERRNO = /^(EPROTO|ERR_SSL_|ERR_TLS_HANDSHAKE)/;
const CERT_ERRNO =
  /^(UNABLE_TO_|SELF_SIGNED_CERT|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_|ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME_MISMATCH)/;
const MAX_REDIRECTS = 10;

/** Reads a whole response body (small documents: manifests, tokens, error JSON). */
export async function readBody(res: IncomingMessage, limit = 16 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      res.destroy();
      throw new Error(`response body exceeds ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Throws away a body so the socket can be reused. */
export function drain(res: IncomingMessage): void {
  res.resume();
}

export class RegistryTransport {
  private readonly insecure: readonly string[];
  private readonly certsDirs: readonly string[];
  private readonly userAgent: string;
  private readonly retry: RetryPolicy;
  private readonly socketTimeoutMs: number;
  private readonly onRetry?: (notice: RetryNotice) => void;
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  private readonly httpsAgents = new Map<string, Promise<https.Agent>>();
  private readonly schemes = new Map<string, Promise<"https" | "http">>();

  constructor(opts: TransportOptions = {}) {
    this.insecure = opts.insecureRegistries ?? [];
    this.certsDirs = opts.certsDirs ?? [DEFAULT_CERTS_DIR];
    this.userAgent = opts.userAgent ?? "kiln";
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.socketTimeoutMs = opts.socketTimeoutMs ?? 60_000;
    this.onRetry = opts.onRetry;
  }

  /** Whether TLS verification is skipped and plain HTTP allowed because the user said so. */
  isInsecure(apiHost: string): boolean {
    return matchesInsecureList(apiHost, this.insecure);
  }

  /**
   * The base URL (`https://host/` or `http://host/`) for a registry API host. HTTPS always comes
   * first; configured-insecure and loopback hosts fall back to HTTP when the TLS handshake fails
   * (the server does not speak TLS), as Docker does. The answer is cached per host.
   */
  baseUrl(apiHost: string, registry: string): Promise<URL> {
    let scheme = this.schemes.get(apiHost);
    if (!scheme) {
      scheme = this.chooseScheme(apiHost, registry);
      this.schemes.set(apiHost, scheme);
      // A failed probe (registry down) must not be remembered: the next call should probe again.
      scheme.catch(() => this.schemes.delete(apiHost));
    }
    return scheme.then((s) => new URL(`${s}://${apiHost}/`));
  }

  private async chooseScheme(apiHost: string, registry: string): Promise<"https" | "http"> {
    if (!this.isInsecure(apiHost) && !isLoopbackHost(apiHost)) return "https";
    try {
      const res = await this.sendOnce({ method: "GET", url: new URL(`https://${apiHost}/v2/`), registry });
      drain(res.body);
      return "https";
    } catch (err) {
      if (isTlsProtocolError(err)) return "http";
      throw this.describeError(err, "GET", new URL(`https://${apiHost}/v2/`), registry);
    }
  }

  /** Sends a request, following redirects and retrying on 5xx, 429 and dropped connections. */
  async fetch(req: HttpRequest): Promise<HttpResponse> {
    for (let attempt = 1; ; attempt++) {
      let reason: string;
      let retryAfterMs: number | undefined;
      try {
        const res = await this.fetchFollowingRedirects(req);
        if (!isRetryableStatus(res.status) || attempt >= this.retry.attempts) return res;
        reason = `HTTP ${res.status}`;
        retryAfterMs = parseRetryAfter(res.headers["retry-after"]);
        drain(res.body);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? "";
        if (!RETRYABLE_ERRNO.has(code) || attempt >= this.retry.attempts) {
          throw this.describeError(err, req.method, req.url, req.registry);
        }
        reason = code;
      }
      const backoff = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1));
      // Jitter spreads out clients that all failed at the same moment.
      const delayMs = Math.min(this.retry.maxDelayMs, retryAfterMs ?? backoff * (0.75 + Math.random() * 0.5));
      this.onRetry?.({ method: req.method, url: req.url.href, attempt, reason, delayMs });
      await new Promise((r) => setTimeout(r, delayMs));
    }
  }

  private async fetchFollowingRedirects(req: HttpRequest): Promise<HttpResponse> {
    let current = req;
    for (let hops = 0; ; hops++) {
      const res = await this.sendOnce(current);
      const location = res.headers.location;
      if (!isRedirect(res.status) || !location || hops >= MAX_REDIRECTS) return res;
      drain(res.body);
      const next = new URL(location, current.url);
      const headers = { ...current.headers };
      // Credentials for the registry are not for the storage backend it redirects to.
      if (next.host !== current.url.host) delete headers.authorization;
      const keepBody = res.status === 307 || res.status === 308;
      current = {
        method: keepBody || current.method === "HEAD" ? current.method : "GET",
        url: next,
        headers,
        body: keepBody ? current.body : undefined,
        registry: current.registry,
      };
    }
  }

  private async sendOnce(req: HttpRequest): Promise<HttpResponse> {
    const isHttps = req.url.protocol === "https:";
    const agent = isHttps ? await this.httpsAgent(req.url.host) : this.httpAgent;
    const body = typeof req.body === "function" ? req.body() : req.body;
    const headers: Record<string, string> = { "user-agent": this.userAgent, ...req.headers };
    if (Buffer.isBuffer(body)) headers["content-length"] = String(body.length);
    else if (body === undefined && req.method !== "GET" && req.method !== "HEAD")
      headers["content-length"] = "0";
    return new Promise<HttpResponse>((resolve, reject) => {
      const send = isHttps ? https.request : http.request;
      const request = send(req.url, { method: req.method, headers, agent }, (res) => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, url: req.url, body: res });
      });
      request.setTimeout(this.socketTimeoutMs, () => {
        const err = new Error(`no response from ${req.url.host} in ${this.socketTimeoutMs} ms`);
        (err as NodeJS.ErrnoException).code = "ETIMEDOUT";
        request.destroy(err);
      });
      request.on("error", (err) => {
        if (body && !Buffer.isBuffer(body)) body.destroy();
        reject(err);
      });
      if (body === undefined) request.end();
      else if (Buffer.isBuffer(body)) request.end(body);
      else {
        body.on("error", (err) => request.destroy(err));
        body.pipe(request);
      }
    });
  }

  private httpsAgent(hostPort: string): Promise<https.Agent> {
    let agent = this.httpsAgents.get(hostPort);
    if (!agent) {
      agent = this.createHttpsAgent(hostPort);
      this.httpsAgents.set(hostPort, agent);
      agent.catch(() => this.httpsAgents.delete(hostPort));
    }
    return agent;
  }

  private async createHttpsAgent(hostPort: string): Promise<https.Agent> {
    const files = await loadRegistryTlsFiles(this.certsDirs, hostPort);
    // Node replaces its roots when `ca` is given; the system roots must stay trusted as well.
    const ca =
      files.cas.length > 0 ? [...rootCertificates, ...files.cas.map((b) => b.toString("utf8"))] : undefined;
    // An https.Agent offers one client certificate; Docker's first pair in name order is used.
    const pair = files.clientPairs[0];
    return new https.Agent({
      keepAlive: true,
      maxSockets: 32,
      ca,
      cert: pair?.cert,
      key: pair?.key,
      rejectUnauthorized: !this.isInsecure(hostPort),
    });
  }

  /** Turns a socket-level failure into an error naming the registry and saying what to check. */
  describeError(err: unknown, method: string, url: URL, registry: string): Error {
    if (err instanceof RegistryError) return err;
    const e = err as NodeJS.ErrnoException;
    const code = e.code ?? "";
    if (CERT_ERRNO.test(code)) {
      const dir = `${this.certsDirs[0] ?? DEFAULT_CERTS_DIR}/${url.host}/`;
      return new RegistryTlsError(
        `registry ${registry}: the TLS certificate of ${url.host} could not be verified (${code}: ${e.message}); ` +
          `put the CA that signed it in ${dir}ca.crt, or list ${registry} as an insecure registry`,
        registry,
      );
    }
    if (isTlsProtocolError(err)) {
      return new RegistryTlsError(
        `registry ${registry}: TLS handshake with ${url.host} failed (${code}: ${e.message}); ` +
          "if it only speaks plain HTTP, list it as an insecure registry",
        registry,
      );
    }
    return new RegistryError(
      `registry ${registry}: ${method} ${url.href} failed: ${code ? `${code} ` : ""}${e.message ?? String(err)}`,
      registry,
    );
  }

  /** Closes idle keep-alive sockets so the process can exit. */
  close(): void {
    this.httpAgent.destroy();
    for (const agent of this.httpsAgents.values()) agent.then((a) => a.destroy()).catch(() => {});
    this.httpsAgents.clear();
  }
}

function isTlsProtocolError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? "";
  return TLS_PROTOCOL_ERRNO.test(code);
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

function parseRetryAfter(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
