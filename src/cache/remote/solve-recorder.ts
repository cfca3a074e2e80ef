// What a build's solves computed, kept for the cache exporter: each vertex's cache key with the input
// keys it came from, and the outputs of each key the solves executed or found cached.
import type { Digest } from "../../oci/digest.js";
import type { SnapshotId, Snapshotter } from "../../snapshot/types.js";
import type { OutputResult, ResultCache } from "../../solver/types.js";

export interface RecordedKey {
  readonly key: Digest;
  readonly inputKeys: readonly string[];
}

export class SolveRecorder {
  private readonly byVertex = new Map<Digest, RecordedKey>();
  private readonly results = new Map<Digest, readonly OutputResult[]>();

  readonly onCacheKey = (vertex: Digest, key: Digest, inputKeys: readonly string[]): void => {
    this.byVertex.set(vertex, { key, inputKeys: [...inputKeys] });
  };

  readonly onResult = (_vertex: Digest, key: Digest, outputs: readonly OutputResult[]): void => {
    this.results.set(key, outputs);
  };

  /** Every key computed, each once (two vertices of different definitions may share a key). */
  keys(): RecordedKey[] {
    const seen = new Map<Digest, RecordedKey>();
    for (const k of this.byVertex.values()) if (!seen.has(k.key)) seen.set(k.key, k);
    return [...seen.values()];
  }

  /**
   * The snapshots of each output of `key`: what this build produced or hit, else what the engine's
   * cache still holds from an earlier build (a fully cached rebuild only touches the final vertex).
   * Undefined when any output is not a committed snapshot.
   */
  async snapshots(
    key: Digest,
    local: ResultCache,
    snapshotter: Snapshotter,
  ): Promise<SnapshotId[] | undefined> {
    const outputs = this.results.get(key) ?? (await local.get(key));
    if (!outputs || outputs.length === 0) return undefined;
    const ids: SnapshotId[] = [];
    for (const o of outputs) {
      if (o.kind !== "snapshot") return undefined;
      if ((await snapshotter.stat(o.id))?.kind !== "committed") return undefined;
      ids.push(o.id);
    }
    return ids;
  }
}
