// A pass-through stream that hashes and counts what flows through it, and errors instead of ending
// when the content is not the descriptor's digest and size (at once when it grows too long).
import { createHash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import type { Digest } from "../oci/digest.js";
import { digestAlgorithm } from "../oci/digest.js";

export class VerifiedStream extends Transform {
  private readonly hash;
  private received = 0;

  constructor(
    private readonly expectedDigest: Digest,
    private readonly expectedSize: number | undefined,
    /** Builds the error for a mismatch; the caller knows the registry and reference to name. */
    private readonly mismatch: (why: string, actual?: Digest) => Error,
    /** Called with each chunk's length, for progress. */
    private readonly onBytes?: (n: number) => void,
  ) {
    super();
    this.hash = createHash(digestAlgorithm(expectedDigest));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.received += chunk.length;
    if (this.expectedSize !== undefined && this.received > this.expectedSize) {
      done(this.mismatch(`received more than the expected ${this.expectedSize} bytes`));
      return;
    }
    this.hash.update(chunk);
    this.onBytes?.(chunk.length);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    if (this.expectedSize !== undefined && this.received !== this.expectedSize) {
      done(this.mismatch(`received ${this.received} bytes, expected ${this.expectedSize}`));
      return;
    }
    const actual = `${digestAlgorithm(this.expectedDigest)}:${this.hash.digest("hex")}` as Digest;
    if (actual !== this.expectedDigest) {
      done(this.mismatch(`content has digest ${actual}`, actual));
      return;
    }
    done();
  }
}
