// Errors of the registry client: each names the registry and reference (and digest where there is
// one), and for authorisation failures whether credentials were sent, so users know what to fix.
import type { Digest } from "../oci/digest.js";

export class RegistryError extends Error {
  readonly code: string = "ERR_REGISTRY";
  constructor(
    message: string,
    /** `host[:port]` as the user wrote it, e.g. `docker.io`, `127.0.0.1:5000`. */
    readonly registry: string,
    /** HTTP status of the failing response, when there was one. */
    readonly status?: number,
  ) {
    super(message);
    this.name = "RegistryError";
  }
}

/** 401/403: the registry (or its token server) refused us. */
export class RegistryAuthError extends RegistryError {
  override readonly code = "ERR_REGISTRY_AUTH";
  constructor(
    message: string,
    registry: string,
    status: number,
    readonly credentialsSent: boolean,
  ) {
    super(message, registry, status);
    this.name = "RegistryAuthError";
  }
}

/** 404: the repository, tag, manifest or blob does not exist. */
export class RegistryNotFoundError extends RegistryError {
  override readonly code = "ERR_REGISTRY_NOT_FOUND";
  constructor(message: string, registry: string) {
    super(message, registry, 404);
    this.name = "RegistryNotFoundError";
  }
}

/** Bytes from the registry do not hash to (or are not the size of) the descriptor they were fetched for. */
export class RegistryDigestMismatchError extends RegistryError {
  override readonly code = "ERR_REGISTRY_DIGEST_MISMATCH";
  constructor(
    message: string,
    registry: string,
    readonly expected: Digest,
    readonly actual?: Digest,
  ) {
    super(message, registry);
    this.name = "RegistryDigestMismatchError";
  }
}

/** An image index has no manifest for the requested platform. */
export class NoMatchingPlatformError extends RegistryError {
  override readonly code = "ERR_NO_MATCHING_PLATFORM";
  constructor(
    message: string,
    registry: string,
    readonly available: string[],
  ) {
    super(message, registry);
    this.name = "NoMatchingPlatformError";
  }
}

/** The registry's TLS certificate could not be verified or the TLS handshake failed. */
export class RegistryTlsError extends RegistryError {
  override readonly code = "ERR_REGISTRY_TLS";
  constructor(message: string, registry: string) {
    super(message, registry);
    this.name = "RegistryTlsError";
  }
}
