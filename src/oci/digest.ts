// Content digests (`sha256:<64 hex>`): the identity of every blob, op and cache record.
import { createHash } from "node:crypto";

declare const digestBrand: unique symbol;
/** A validated `algorithm:hex` content digest. Only sha256 is produced; sha512 is accepted on read. */
export type Digest = string & { readonly [digestBrand]: true };

const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export function isDigest(s: string): s is Digest {
  return DIGEST_RE.test(s);
}

export function parseDigest(s: string): Digest {
  if (!isDigest(s)) throw new Error(`invalid digest ${JSON.stringify(s)}: expected sha256:<64 hex digits>`);
  return s;
}

export function sha256Digest(data: string | Uint8Array): Digest {
  return `sha256:${createHash("sha256").update(data).digest("hex")}` as Digest;
}

/** The hex part of a digest, used for file names in content-addressed stores. */
export function digestHex(d: Digest): string {
  return d.slice(d.indexOf(":") + 1);
}

export function digestAlgorithm(d: Digest): "sha256" | "sha512" {
  return d.startsWith("sha512:") ? "sha512" : "sha256";
}
