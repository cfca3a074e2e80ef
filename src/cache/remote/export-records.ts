// Chooses the records a cache export carries and turns each result into its layer chain:
// `min` keeps the keys whose results lie on a final result's snapshot chain (the steps of the final
// stage), `max` keeps every key that has a result, intermediate stages included. Layers are the
// snapshots' diffs as the image exporter makes them, so secrets and cache mounts (never part of a
// snapshot) are never part of a cache either.
// A key whose result came from an imported cache, or lies below such a hit (the solver needs nothing
// below a hit, so those results were never materialized), is exported from the imported record:
// its layers as the imported cache had them. So a build that only hit the cache exports the same
// records and links as the build that filled it, and a later importer can still match its prefixes.
import type { ContentStore } from "../../content/types.js";
import {
  type Compression,
  type LayerRecordStore,
  layerForSnapshot,
  snapshotChain,
} from "../../exporter/layer-blobs.js";
import type { Digest } from "../../oci/digest.js";
import type { SnapshotId, Snapshotter } from "../../snapshot/types.js";
import type { ResultCache } from "../../solver/types.js";
import type { CacheLayerBlob, ExportRecord, ImportedLayer } from "./cache-config.js";
import type { CacheSource } from "./cache-source.js";
import type { SourcedRecord } from "./imported-cache.js";
import { recompressLayer } from "./layer-compression.js";
import type { SolveRecorder } from "./solve-recorder.js";

export interface ExportRecordDeps {
  readonly snapshotter: Snapshotter;
  readonly store: ContentStore;
  readonly layerRecords: LayerRecordStore;
  /** The engine's own result cache, for results of earlier builds. */
  readonly local: ResultCache;
  /** The build's `--cache-from` records, for keys whose results this engine does not hold. */
  readonly imported?: { recordFor(key: Digest): SourcedRecord | undefined };
}

export interface ExportRecordOptions {
  readonly mode: "min" | "max";
  /** The final results' root snapshots (one per platform). */
  readonly roots: readonly (SnapshotId | undefined)[];
  readonly compression: Compression;
  readonly compressionLevel?: number;
  readonly forceCompression: boolean;
  /** SOURCE_DATE_EPOCH (seconds): layer times after it are written as it, as the image's history is. */
  readonly epoch?: number;
}

/** A layer's time as the cache records it: when its step ran, clamped to the epoch if there is one. */
function layerTime(madeMs: number, epoch: number | undefined): string {
  const ms = epoch !== undefined && madeMs > epoch * 1000 ? epoch * 1000 : madeMs;
  return new Date(ms).toISOString();
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
  let finalDiffIds: Promise<Digest[][]> | undefined;
  /** Whether an imported chain is a prefix of a final result's chain (min mode's test, by content). */
  const onFinalChain = async (chain: readonly ImportedLayer[]): Promise<boolean> => {
    finalDiffIds ??= Promise.all(
      opts.roots.flatMap((r) => (r ? [chainOf(r).then((c) => c.map((l) => l.diffId))] : [])),
    );
    return (await finalDiffIds).some(
      (f) => chain.length <= f.length && chain.every((l, i) => l.diffId === f[i]),
    );
  };
  const out: ExportRecord[] = [];
  for (const k of recorder.keys()) {
    const snapshots = await recorder.snapshots(k.key, deps.local, deps.snapshotter);
    if (snapshots) {
      if (opts.mode === "min" && !snapshots.every((s) => finalChain.has(s))) continue;
      out.push({ key: k.key, inputKeys: k.inputKeys, outputs: await Promise.all(snapshots.map(chainOf)) });
      continue;
    }
    const imported = deps.imported?.recordFor(k.key);
    if (!imported) continue;
    const { record, source } = imported;
    if (opts.mode === "min" && !(await everyAsync(record.outputs, onFinalChain))) continue;
    out.push({
      key: k.key,
      inputKeys: k.inputKeys,
      outputs: await Promise.all(record.outputs.map((c) => importedLayerChain(deps, source, c, opts))),
    });
  }
  // In key order, not in the order the solve happened to compute keys: the same build exports the
  // same document (an inline cache is part of the image's digest).
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

async function everyAsync<T>(items: readonly T[], test: (item: T) => Promise<boolean>): Promise<boolean> {
  for (const item of items) if (!(await test(item))) return false;
  return true;
}

/** An imported record's chain, its blobs brought into the store (the export writes them from there). */
async function importedLayerChain(
  deps: ExportRecordDeps,
  source: CacheSource,
  chain: readonly ImportedLayer[],
  opts: ExportRecordOptions,
): Promise<CacheLayerBlob[]> {
  const out: CacheLayerBlob[] = [];
  for (const l of chain) {
    await source.fetchBlob(l.blob, deps.store);
    const blob = opts.forceCompression
      ? await recompressLayer(deps.store, l.blob, opts.compression, opts.compressionLevel)
      : l.blob;
    out.push({ blob, diffId: l.diffId, ...(l.createdAt ? { createdAt: l.createdAt } : {}) });
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
    const made = (await deps.snapshotter.stat(id))?.createdAt;
    const createdAt = made === undefined ? undefined : layerTime(made, opts.epoch);
    out.push({ blob, diffId: rec.diffId, ...(createdAt ? { createdAt } : {}) });
  }
  return out;
}
