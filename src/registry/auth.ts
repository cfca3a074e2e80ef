// Registry authorisation: remembers each registry's challenge (Basic or Bearer), fetches Bearer
// tokens from the challenge's realm for the scopes a request needs, and caches them until expiry.

import type { CredentialLookup, RegistryCredentials } from "./credentials.js";
import { RegistryAuthError } from "./errors.js";
import { type RegistryTransport, readBody } from "./transport.js";
import { type AuthChallenge, parseWwwAuthenticate } from "./www-authenticate.js";

export interface AuthHeader {
  /** The `Authorization` value, when there is one to send. */
  readonly value?: string;
  /** Whether the user's credentials went out (directly, or to the token server for this token). */
  readonly credentialsSent: boolean;
  /** The user whose credentials were sent, for error messages. */
  readonly username?: string;
}

interface CachedToken {
  readonly token: string;
  readonly expiresAt: number;
  readonly credentialsSent: boolean;
  readonly username?: string;
}

interface RegistryAuthState {
  challenge?: AuthChallenge;
  readonly tokens: Map<string, Promise<CachedToken>>;
}

/** Tokens are refreshed this long before the server says they expire, so none expires in flight. */
const EXPIRY_MARGIN_MS = 10_000;
/** The token spec's default lifetime when a token server does not say. */
const DEFAULT_TOKEN_SECONDS = 60;

export class RegistryAuthorizer {
  private readonly states = new Map<string, RegistryAuthState>();

  constructor(
    private readonly transport: RegistryTransport,
    private readonly credentials: CredentialLookup,
  ) {}

  private state(registry: string): RegistryAuthState {
    let s = this.states.get(registry);
    if (!s) {
      s = { tokens: new Map() };
      this.states.set(registry, s);
    }
    return s;
  }

  /** The header for a request needing `scopes` (`repository:NAME:pull[,push]`), from what is known so far. */
  async header(registry: string, scopes: readonly string[]): Promise<AuthHeader> {
    const { challenge } = this.state(registry);
    if (!challenge) return { credentialsSent: false };
    if (challenge.scheme === "basic") {
      const creds = await this.credentials(registry);
      if (!creds?.username || creds.password === undefined) return { credentialsSent: false };
      const value = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`;
      return { value, credentialsSent: true, username: creds.username };
    }
    if (challenge.scheme === "bearer") {
      const token = await this.token(registry, challenge, scopes);
      return {
        value: `Bearer ${token.token}`,
        credentialsSent: token.credentialsSent,
        username: token.username,
      };
    }
    return { credentialsSent: false };
  }

  /**
   * Learns from a 401's `WWW-Authenticate` and drops cached tokens for these scopes. Returns the
   * scopes to ask for next (the challenge may name one we did not) or undefined when the
   * challenge is one we cannot answer.
   */
  onUnauthorized(
    registry: string,
    scopes: readonly string[],
    wwwAuthenticate: string | string[] | undefined,
  ): string[] | undefined {
    const challenges = parseWwwAuthenticate(wwwAuthenticate);
    const challenge =
      challenges.find((c) => c.scheme === "bearer" && c.params.realm) ??
      challenges.find((c) => c.scheme === "basic");
    if (!challenge) return undefined;
    const state = this.state(registry);
    state.challenge = challenge;
    const merged = mergeScopes(scopes, (challenge.params.scope ?? "").split(" "));
    state.tokens.delete(tokenKey(challenge, scopes));
    state.tokens.delete(tokenKey(challenge, merged));
    return merged;
  }

  private token(registry: string, challenge: AuthChallenge, scopes: readonly string[]): Promise<CachedToken> {
    const state = this.state(registry);
    const key = tokenKey(challenge, scopes);
    const cached = state.tokens.get(key);
    if (cached) {
      return cached.then((t) => {
        if (t.expiresAt > Date.now()) return t;
        state.tokens.delete(key);
        return this.token(registry, challenge, scopes);
      });
    }
    const fresh = this.fetchToken(registry, challenge, scopes);
    state.tokens.set(key, fresh);
    fresh.catch(() => state.tokens.delete(key));
    return fresh;
  }

  private async fetchToken(
    registry: string,
    challenge: AuthChallenge,
    scopes: readonly string[],
  ): Promise<CachedToken> {
    const realm = challenge.params.realm!;
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryAuthError(
        `registry ${registry} sent a Bearer challenge with an invalid realm ${JSON.stringify(realm)}`,
        registry,
        401,
        false,
      );
    }
    const creds = await this.credentials(registry);
    const service = challenge.params.service;
    const started = Date.now();
    const res = creds?.identityToken
      ? await this.fetchOAuthToken(registry, url, service, scopes, creds)
      : await this.fetchBasicToken(registry, url, service, scopes, creds);
    const credentialsSent = Boolean(
      creds?.identityToken || (creds?.username && creds.password !== undefined),
    );
    const body = await readBody(res.body, 1024 * 1024);
    if (res.status === 401 || res.status === 403) {
      throw new RegistryAuthError(
        `the token server ${url.origin}${url.pathname} of registry ${registry} refused a token for ` +
          `${scopes.join(" ") || "the registry"} (HTTP ${res.status}): ${describeCredentials(credentialsSent, creds)}`,
        registry,
        res.status,
        credentialsSent,
      );
    }
    if (res.status !== 200) {
      throw new RegistryAuthError(
        `the token server ${url.origin}${url.pathname} of registry ${registry} answered HTTP ${res.status}: ` +
          body.toString("utf8").slice(0, 300),
        registry,
        res.status,
        credentialsSent,
      );
    }
    let parsed: { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      throw new RegistryAuthError(
        `the token server of registry ${registry} answered with something that is not JSON`,
        registry,
        res.status,
        credentialsSent,
      );
    }
    const token = parsed.token ?? parsed.access_token;
    if (!token) {
      throw new RegistryAuthError(
        `the token server of registry ${registry} answered without a token`,
        registry,
        res.status,
        credentialsSent,
      );
    }
    const lifetimeMs =
      (parsed.expires_in && parsed.expires_in > 0 ? parsed.expires_in : DEFAULT_TOKEN_SECONDS) * 1000;
    return {
      token,
      expiresAt: started + Math.max(lifetimeMs - EXPIRY_MARGIN_MS, lifetimeMs / 2),
      credentialsSent,
      username: creds?.username,
    };
  }

  private fetchBasicToken(
    registry: string,
    realm: URL,
    service: string | undefined,
    scopes: readonly string[],
    creds: RegistryCredentials | undefined,
  ) {
    const url = new URL(realm);
    if (service) url.searchParams.set("service", service);
    for (const scope of scopes) url.searchParams.append("scope", scope);
    const headers: Record<string, string> = {};
    if (creds?.username && creds.password !== undefined) {
      headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`;
      // Docker Hub issues refresh tokens only on request; we never need one.
      url.searchParams.set("account", creds.username);
    }
    return this.transport.fetch({ method: "GET", url, headers, registry });
  }

  private fetchOAuthToken(
    registry: string,
    realm: URL,
    service: string | undefined,
    scopes: readonly string[],
    creds: RegistryCredentials,
  ) {
    const form = new URLSearchParams();
    form.set("grant_type", "refresh_token");
    form.set("refresh_token", creds.identityToken!);
    form.set("client_id", "kiln");
    if (service) form.set("service", service);
    if (scopes.length > 0) form.set("scope", scopes.join(" "));
    return this.transport.fetch({
      method: "POST",
      url: realm,
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: Buffer.from(form.toString()),
      registry,
    });
  }
}

/**
 * Unions scopes per resource (`repository:a:pull` + `repository:a:pull,push` → one
 * `repository:a:pull,push`), keeping first-seen order, so a challenge that names a scope we
 * already cover does not change the token we ask for (or its cache key).
 */
export function mergeScopes(...lists: readonly (readonly string[])[]): string[] {
  const actions = new Map<string, string[]>();
  for (const scope of lists.flat()) {
    if (!scope) continue;
    const cut = scope.lastIndexOf(":");
    if (cut <= 0) {
      if (!actions.has(scope)) actions.set(scope, []);
      continue;
    }
    const resource = scope.slice(0, cut);
    const list = actions.get(resource) ?? [];
    for (const a of scope.slice(cut + 1).split(",")) if (a && !list.includes(a)) list.push(a);
    actions.set(resource, list);
  }
  return [...actions].map(([resource, list]) =>
    list.length > 0 ? `${resource}:${list.join(",")}` : resource,
  );
}

function tokenKey(challenge: AuthChallenge, scopes: readonly string[]): string {
  return `${challenge.params.realm}|${challenge.params.service ?? ""}|${[...scopes].sort().join(" ")}`;
}

/** The part of an authorisation error that tells the user what went out. */
export function describeCredentials(
  sent: boolean,
  creds?: { username?: string; identityToken?: string },
): string {
  if (!sent) return "no credentials were sent (run `docker login` for this registry, or pass credentials)";
  if (creds?.identityToken && !creds.username) return "an identity token was sent and rejected";
  return `credentials were sent${creds?.username ? ` for user ${JSON.stringify(creds.username)}` : ""}`;
}
