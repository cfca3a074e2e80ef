// The content store's contract: immutable blobs addressed by digest, written atomically.
import type { Readable } from "node:stream";
import type { Digest } from "../oci/digest.js";

export interface BlobInfo {
  readonly digest: Digest;
  readonly size: number;
}

export interface WriteOptions {
  /** When given, the write fails (and leaves nothing behind) unless the content has this digest. */
  readonly expected?: Digest;
  readonly expectedSize?: number;
  /**
   * The source checks `expected` itself (a registry download verified as it streams): it errors
   * instead of ending when its bytes are not that digest, so the store counts them but does not
   * hash them a second time. Only with `expected` and `expectedSize`.
   */
  readonly sourceVerified?: boolean;
  /** Cancels the write; the temp file is removed and nothing is stored. */
  readonly signal?: AbortSignal;
}

export interface ContentStore {
  has(digest: Digest): Promise<boolean>;
  info(digest: Digest): Promise<BlobInfo | undefined>;
  /** A stream of the blob; it errors at the end if the bytes on disk no longer match the digest. */
  read(digest: Digest): Readable;
  readBytes(digest: Digest): Promise<Buffer>;
  /** Streams a blob in: temp file, fsync, digest check, rename. Idempotent for existing blobs. */
  write(source: Readable | AsyncIterable<Uint8Array>, opts?: WriteOptions): Promise<BlobInfo>;
  writeBytes(data: Uint8Array | string, opts?: WriteOptions): Promise<BlobInfo>;
  delete(digest: Digest): Promise<void>;
  list(): AsyncIterable<BlobInfo>;
  /** The file holding the blob, for zero-copy readers (e.g. sendfile to a registry). */
  pathOf(digest: Digest): string;
}
