// One authorised registry API call: builds the URL on the host's scheme, adds the Authorization
// the registry asked for (answering one 401 with fresh credentials or a token), and turns
// unexpected statuses into errors that name the registry, what was asked for and what was sent.
import type { RegistryAuthorizer } from "./auth.js";
import { describeCredentials } from "./auth.js";
import { RegistryAuthError, RegistryError, RegistryNotFoundError } from "./errors.js";
import { registryApiHost } from "./hosts.js";
import { drain, type HttpResponse, type RegistryTransport, readBody } from "./transport.js";

export interface RepoRef {
  readonly registry: string;
  readonly repository: string;
}

export interface ApiCall {
  readonly method: string;
  /** A path under the registry root (`/v2/…`, may carry a query), or an absolute URL (a Location). */
  readonly target: string | URL;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer | (() => import("node:stream").Readable);
  /** Token scopes the call needs, e.g. `repository:library/busybox:pull`. */
  readonly scopes: readonly string[];
  /** What the call is about, for errors: `manifest 127.0.0.1:5000/busybox:latest`. */
  readonly what: string;
  /** Statuses handed back to the caller; any other status becomes an error. */
  readonly accept: readonly number[];
}

export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

export function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}

/** A pull of content (GET/HEAD under pull scopes) that a mirror can serve in the registry's place. */
function isMirrorable(call: ApiCall): boolean {
  return (
    (call.method === "GET" || call.method === "HEAD") &&
    typeof call.target === "string" &&
    call.scopes.every((s) => s.endsWith(":pull"))
  );
}

export class RegistryHttp {
  constructor(
    readonly transport: RegistryTransport,
    private readonly authorizer: RegistryAuthorizer,
    /** Registry → mirrors asked first for pulls, as buildkitd's `[registry."HOST"] mirrors`. */
    private readonly mirrors: Readonly<Record<string, readonly string[]>> = {},
  ) {}

  /** The absolute URL of a `/v2/…` path on a registry. */
  async url(registry: string, path: string): Promise<URL> {
    const base = await this.transport.baseUrl(registryApiHost(registry), registry);
    return new URL(path, base);
  }

  async call(registry: string, call: ApiCall): Promise<HttpResponse> {
    const mirrors = isMirrorable(call) ? (this.mirrors[registry] ?? []) : [];
    for (const mirror of mirrors) {
      try {
        const res = await this.callOn(mirror, call);
        // What a mirror lacks (or refuses) the registry itself may still have.
        if (res.status < 400) return res;
        drain(res.body);
      } catch (err) {
        if (!(err instanceof RegistryError)) throw err;
      }
    }
    return this.callOn(registry, call);
  }

  private async callOn(registry: string, call: ApiCall): Promise<HttpResponse> {
    try {
      return await this.authorisedCall(registry, call);
    } catch (err) {
      // Connection-level failures say which host failed; add what was being asked for.
      if (err instanceof RegistryError && err.status === undefined && !err.message.includes(call.what)) {
        err.message = `${call.what}: ${err.message}`;
      }
      throw err;
    }
  }

  private async authorisedCall(registry: string, call: ApiCall): Promise<HttpResponse> {
    const url = typeof call.target === "string" ? await this.url(registry, call.target) : call.target;
    let scopes = call.scopes;
    let auth = await this.authorizer.header(registry, scopes);
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { ...call.headers };
      if (auth.value) headers.authorization = auth.value;
      const res = await this.transport.fetch({
        method: call.method,
        url,
        headers,
        body: call.body,
        registry,
      });
      if (res.status === 401 && attempt === 0) {
        const next = this.authorizer.onUnauthorized(registry, scopes, res.headers["www-authenticate"]);
        if (next) {
          const retryAuth = await this.authorizer.header(registry, next);
          // Only worth another try if it sends something different from what was just refused.
          if (retryAuth.value !== undefined && retryAuth.value !== auth.value) {
            drain(res.body);
            scopes = next;
            auth = retryAuth;
            continue;
          }
        }
      }
      if (call.accept.includes(res.status)) return res;
      throw await this.errorFor(registry, call, res, auth.credentialsSent, auth.username);
    }
  }

  private async errorFor(
    registry: string,
    call: ApiCall,
    res: HttpResponse,
    credentialsSent: boolean,
    username: string | undefined,
  ): Promise<Error> {
    const detail = call.method === "HEAD" ? "" : await registryErrorDetail(res);
    const suffix = detail ? `: ${detail}` : "";
    if (res.status === 401 || res.status === 403) {
      const verb = res.status === 401 ? "401 Unauthorized" : "403 Forbidden";
      return new RegistryAuthError(
        `registry ${registry} refused ${call.method} of ${call.what} (${verb}${suffix}); ` +
          describeCredentials(credentialsSent, { username }),
        registry,
        res.status,
        credentialsSent,
      );
    }
    if (res.status === 404) {
      return new RegistryNotFoundError(`${call.what} not found in registry ${registry}${suffix}`, registry);
    }
    return new RegistryError(
      `registry ${registry}: ${call.method} of ${call.what} failed with HTTP ${res.status}${suffix}`,
      registry,
      res.status,
    );
  }
}

/** The `errors` of a distribution error body (`{"errors":[{"code","message"}]}`), or the text. */
async function registryErrorDetail(res: HttpResponse): Promise<string> {
  let text: string;
  try {
    text = (await readBody(res.body, 64 * 1024)).toString("utf8").trim();
  } catch {
    return "";
  }
  try {
    const parsed = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
    if (Array.isArray(parsed.errors) && parsed.errors.length > 0) {
      return parsed.errors.map((e) => [e.code, e.message].filter(Boolean).join(" ")).join("; ");
    }
  } catch {
    // Not JSON: fall through to the raw text.
  }
  return text.slice(0, 300);
}

/** Resolves a `Location` header against the URL that sent it. */
export function locationOf(res: HttpResponse, registry: string, what: string): URL {
  const location = res.headers.location;
  if (!location) {
    throw new RegistryError(
      `registry ${registry}: the answer (HTTP ${res.status}) for ${what} has no Location header`,
      registry,
      res.status,
    );
  }
  return new URL(location, res.url);
}
