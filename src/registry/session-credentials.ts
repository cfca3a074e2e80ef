// Registry credentials a build's client lends the engine, as Buildx's session auth provider does:
// the engine asks the build's session for a registry's credentials first (the client answers from
// its own Docker config) and falls back to the engine host's own config only when the client has
// none. Secrets pass through memory only: they are never logged, written or put in error text.
import { createHash, randomBytes } from "node:crypto";
import type { CredentialLookup, RegistryCredentials } from "./credentials.js";

/**
 * The lookup for one build: the client's answer, else the host's. Each is asked at most once per
 * registry per build (the client's answer costs a round trip, a helper is a program run). A
 * failing client lookup fails the operation that needed it, naming the registry but not a secret.
 */
export function clientFirstCredentials(client: CredentialLookup, host: CredentialLookup): CredentialLookup {
  const asked = new Map<string, Promise<RegistryCredentials | undefined>>();
  return (registry) => {
    let found = asked.get(registry);
    if (!found) {
      found = client(registry).then(
        (creds) => (hasSecret(creds) ? creds : host(registry)),
        (err: unknown) => {
          throw new Error(
            `the client's credentials for registry ${registry}: ${err instanceof Error ? err.message : String(err)}`,
          );
        },
      );
      asked.set(registry, found);
      found.catch(() => asked.delete(registry));
    }
    return found;
  };
}

function hasSecret(creds: RegistryCredentials | undefined): creds is RegistryCredentials {
  return Boolean(creds && (creds.identityToken || (creds.username && creds.password !== undefined)));
}

/** A per-process salt: fingerprints cannot be compared across processes or reversed by lookup tables. */
const SALT = randomBytes(32);

/**
 * An opaque name for "whoever these credentials are" at a registry, so that what one identity
 * resolved (a private image's digest and config) is not handed to another from a cache. It is a
 * salted hash kept in memory; "anonymous" when there are none.
 */
export function credentialsFingerprint(registry: string, creds: RegistryCredentials | undefined): string {
  if (!hasSecret(creds)) return "anonymous";
  return createHash("sha256")
    .update(SALT)
    .update(`${registry}\0${creds.username ?? ""}\0${creds.password ?? ""}\0${creds.identityToken ?? ""}`)
    .digest("hex");
}
