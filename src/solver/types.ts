// What the solver needs from a worker, and what a solve produces.
import type { Vertex } from "../llb/ops.js";
import type { Digest } from "../oci/digest.js";
import type { SnapshotId } from "../snapshot/types.js";
import type { ProgressEvent } from "./progress.js";

/** One output of an executed vertex. */
export type OutputResult =
  | { readonly kind: "scratch" }
  | { readonly kind: "snapshot"; readonly id: SnapshotId }
  /** A synced local context: read-only, re-synced each build, never recorded in the cache. */
  | { readonly kind: "directory"; readonly path: string };

export interface VertexContext {
  readonly digest: Digest;
  readonly name: string;
  readonly signal: AbortSignal;
  emit(event: ProgressEvent): void;
  log(stream: 1 | 2, data: Buffer): void;
}

/** The worker as the solver sees it: keys that depend on content, and execution of one vertex. */
export interface OpWorker {
  /**
   * Extra key material for a vertex whose result depends on content its op does not name
   * (a local context: the checksum of what it includes; an http source: its checksum/ETag).
   */
  contentKey(vertex: Vertex, ctx: VertexContext): Promise<string | undefined>;
  /**
   * A key for input `index` of `vertex` that covers only the part of that input the vertex reads
   * (COPY of selected paths from a local context), or undefined to use the input's whole key.
   */
  selectionKey(vertex: Vertex, index: number, input: Vertex, ctx: VertexContext): Promise<string | undefined>;
  /** Whether the vertex's results may be recorded in and reused from the cache. */
  cacheable(vertex: Vertex): boolean;
  execute(vertex: Vertex, inputs: readonly OutputResult[], ctx: VertexContext): Promise<OutputResult[]>;
  /** Whether a cached result is still usable (its snapshots exist). */
  resultExists(result: readonly OutputResult[]): Promise<boolean>;
}

/** Where the solver records and finds results by cache key. */
export interface ResultCache {
  get(key: Digest): Promise<readonly OutputResult[] | undefined>;
  put(key: Digest, outputs: readonly OutputResult[], description: string): Promise<void>;
}
