// Chooses the records a cache export carries and turns each result into its layer chain:
// `min` keeps the keys whose results lie on a final result's snapshot chain (the steps of the final
// stage), `max` keeps every key that has a result, intermediate stages included. Layers are the
// snapshots' diffs as the image exporter makes them, so secrets and cache mounts (never part of a
// snapshot) are never part of a cache either.
import type { ContentStore } from "../../content/types.js";
import {
  type Compression,
  type LayerRecordStore,
  layerForSnapshot,
  snapshotChain,
} from "../../exporter/layer-blobs.js";
import type { SnapshotId, Snapshotter } from "../../snapshot/types.js";
import type { ResultCache } from "../../solver/types.js";
import type { CacheLayerBlob, ExportRecord } from "./cache-config.js";
import { recompressLayer } from "./layer-compression.js";
import type { SolveRecorder } from "./solve-recorder.js";

export interface ExportRecordDeps {
  readonly snapshotter: Snapshotter;
  readonly store: ContentStore;
  readonly layerRecords: LayerRecordStore;
  /** The engine's own result cache, for results of earlier builds. */
  readonly local: ResultCache;
}

export interface ExportRecordOptions {
  readonly mode: "min" | "max";
  /** The final results' root snapshots (one per platform). */
  readonly roots: readonly (SnapshotId | undefined)[];
  readonly compression: Compression;
  readonly compressionLevel?: number;
  readonly forceCompression: boolean;
}

export async function exportRecords(
  deps: ExportRecordDeps,
  recorder: SolveRecorder,
  opts: ExportRecordOptions,
): Promise<ExportRecord[]> {
  const finalChain = new Set<SnapshotId>();
  for (const root of opts.roots) {
    if (root) for (const id of await snapshotChain(deps.snapshotter, root)) finalChain.add(id);
  }
  const chains = new Map<SnapshotId, Promise<CacheLayerBlob[]>>();
  const chainOf = (top: SnapshotId): Promise<CacheLayerBlob[]> => {
    let p = chains.get(top);
    if (!p) {
      p = layerChain(deps, top, opts);
      chains.set(top, p);
    }
    return p;
  };
  const out: ExportRecord[] = [];
  for (const k of recorder.keys()) {
    const snapshots = await recorder.snapshots(k.key, deps.local, deps.snapshotter);
    if (!snapshots) continue;
    if (opts.mode === "min" && !snapshots.every((s) => finalChain.has(s))) continue;
    out.push({ key: k.key, inputKeys: k.inputKeys, outputs: await Promise.all(snapshots.map(chainOf)) });
  }
  return out;
}

/** The non-empty layers of a snapshot chain, bottom first: what an importer applies to rebuild it. */
async function layerChain(
  deps: ExportRecordDeps,
  top: SnapshotId,
  opts: ExportRecordOptions,
): Promise<CacheLayerBlob[]> {
  const ids = await snapshotChain(deps.snapshotter, top);
  const out: CacheLayerBlob[] = [];
  for (const id of ids) {
    const rec = await layerForSnapshot(deps.snapshotter, deps.store, deps.layerRecords, id, opts.compression);
    // Empty diffs are left out as the image exporter leaves them out, so chain IDs match the image's.
    if (rec.empty) continue;
    const blob = opts.forceCompression
      ? await recompressLayer(deps.store, rec.blob, opts.compression, opts.compressionLevel)
      : rec.blob;
    out.push({ blob, diffId: rec.diffId });
  }
  return out;
}
