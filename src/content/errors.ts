// Errors of the content store: each names the blob and says what to do about it.
import type { Digest } from "../oci/digest.js";

export class BlobNotFoundError extends Error {
  readonly code = "ERR_BLOB_NOT_FOUND";
  constructor(
    readonly digest: Digest,
    where: string,
  ) {
    super(`blob ${digest} not found in the content store at ${where}`);
    this.name = "BlobNotFoundError";
  }
}

/** The bytes do not hash to the digest they were announced or stored under. */
export class DigestMismatchError extends Error {
  readonly code = "ERR_DIGEST_MISMATCH";
  constructor(
    readonly expected: Digest,
    readonly actual: Digest,
    context: string,
  ) {
    super(`${context}: content has digest ${actual}, expected ${expected}`);
    this.name = "DigestMismatchError";
  }
}

export class SizeMismatchError extends Error {
  readonly code = "ERR_SIZE_MISMATCH";
  constructor(
    readonly expected: number,
    readonly actual: number,
    context: string,
  ) {
    super(
      `${context}: content is ${actual} bytes${actual > expected ? " or more" : ""}, expected ${expected}`,
    );
    this.name = "SizeMismatchError";
  }
}
