// One HTTP(S) request for an http source, following redirects as Go's client does for BuildKit:
// up to 10 hops, HEAD stays HEAD, credentials are not carried to another host.
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";

const MAX_REDIRECTS = 10;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

export interface HttpSourceResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The body; drained or consumed by the caller. */
  readonly body: IncomingMessage;
  /** The URL that answered, after redirects. */
  readonly url: string;
}

/** A download failure users can act on: which URL, and what the server said. */
export class HttpSourceError extends Error {
  override name = "HttpSourceError";
  constructor(
    message: string,
    readonly url: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

function once(
  url: URL,
  method: "GET" | "HEAD",
  headers: Record<string, string>,
  signal?: AbortSignal,
): Promise<IncomingMessage> {
  const send = url.protocol === "https:" ? httpsRequest : url.protocol === "http:" ? httpRequest : undefined;
  if (!send) throw new HttpSourceError(`unsupported URL scheme for ${url.href}`, url.href);
  return new Promise((resolve, reject) => {
    const req = send(url, { method, headers, signal }, resolve);
    req.on("error", (e) =>
      reject(new HttpSourceError(`failed to request ${url.href}: ${e.message}`, url.href)),
    );
    req.end();
  });
}

/**
 * Sends `method` to `url`, following redirects. Every status that is not a redirect is returned
 * (the caller decides what 304 or 404 means); the body is left for the caller.
 */
export async function requestHttpSource(
  url: string,
  method: "GET" | "HEAD",
  headers: Record<string, string>,
  signal?: AbortSignal,
): Promise<HttpSourceResponse> {
  let current = new URL(url);
  const origin = current.host;
  let sendHeaders = { ...headers };
  for (let hop = 0; ; hop++) {
    const res = await once(current, method, sendHeaders, signal);
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if (!REDIRECT_STATUSES.has(status) || location === undefined) {
      return { status, headers: res.headers, body: res, url: current.href };
    }
    res.resume();
    if (hop >= MAX_REDIRECTS)
      throw new HttpSourceError(
        `too many redirects downloading ${url} (stopped after ${MAX_REDIRECTS})`,
        url,
      );
    current = new URL(location, current);
    if (current.host !== origin) {
      // Credentials were given for the origin, not wherever it points.
      sendHeaders = Object.fromEntries(
        Object.entries(sendHeaders).filter(([k]) => k.toLowerCase() !== "authorization"),
      );
    }
  }
}

/** The value of a single-valued header. */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}
