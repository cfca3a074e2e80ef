// The solver's result cache on the engine's cache-key index: a key maps to committed snapshots.
import type { CacheKeyIndex } from "../cache/cache-key-index.js";
import type { Digest } from "../oci/digest.js";
import type { OutputResult, ResultCache } from "../solver/types.js";

export class IndexedResultCache implements ResultCache {
  constructor(private readonly index: CacheKeyIndex) {}

  async get(key: Digest): Promise<readonly OutputResult[] | undefined> {
    const rec = this.index.get(key);
    if (!rec) return undefined;
    this.index.touch(key);
    return rec.outputs.map((o) => ({ kind: "snapshot", id: o.snapshotId }));
  }

  async put(key: Digest, outputs: readonly OutputResult[], description: string): Promise<void> {
    const snapshots = [];
    for (const o of outputs) {
      // Scratch and directory outputs are cheap to remake and have nothing to point at: not recorded.
      if (o?.kind !== "snapshot") return;
      snapshots.push({ snapshotId: o.id });
    }
    if (snapshots.length === 0) return;
    this.index.put(key, { outputs: snapshots, description });
  }
}
