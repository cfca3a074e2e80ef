// Assembles image manifests and indexes from a build result: layers, config with diff_ids and a
// history aligned with the layers as BuildKit normalises it, manifest, and a multi-platform index.
import type { ContentStore } from "../content/types.js";
import { canonicalJson } from "../llb/definition.js";
import { normalizePlatform, type Platform } from "../oci/platform.js";
import {
  type Descriptor,
  type HistoryEntry,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  MediaType,
  toOciPlatform,
} from "../oci/spec.js";
import type { SnapshotId, Snapshotter } from "../snapshot/types.js";
import { type Compression, type LayerRecord, type LayerRecordStore, layersForChain } from "./layer-blobs.js";

export interface PlatformResult {
  readonly platform: Platform;
  /** The root filesystem; undefined for an empty (FROM scratch, no changes) image. */
  readonly snapshot?: SnapshotId;
  /** The image config the frontend computed (rootfs is filled in here). */
  readonly config: ImageConfig;
}

export interface ImageWriteOptions {
  readonly compression: Compression;
  /** OCI media types (default) or Docker schema 2 ones. */
  readonly ociMediaTypes: boolean;
  /** Seconds since the epoch for every created timestamp (SOURCE_DATE_EPOCH), else now. */
  readonly epoch?: number;
  readonly manifestAnnotations?: Readonly<Record<string, string>>;
  readonly indexAnnotations?: Readonly<Record<string, string>>;
}

export interface WrittenImage {
  readonly platform: Platform;
  readonly manifest: Descriptor;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
}

export interface ImageWriterDeps {
  readonly snapshotter: Snapshotter;
  readonly store: ContentStore;
  readonly layerRecords: LayerRecordStore;
}

/**
 * Pairs layers with history: each non-empty history entry takes the next layer; a layer whose diff
 * is empty is dropped and its entry marked empty_layer, as BuildKit's exporter does.
 */
export function alignHistory(
  history: readonly HistoryEntry[],
  layers: readonly LayerRecord[],
  created: string,
): { history: HistoryEntry[]; layers: LayerRecord[] } {
  const outHistory: HistoryEntry[] = [];
  const outLayers: LayerRecord[] = [];
  let li = 0;
  for (const h of history) {
    const entry: HistoryEntry = { ...h, created: h.created ?? created };
    if (h.empty_layer) {
      outHistory.push(entry);
      continue;
    }
    const layer = layers[li++];
    if (!layer || layer.empty) {
      outHistory.push({ ...entry, empty_layer: true });
      continue;
    }
    outHistory.push({ ...entry, empty_layer: undefined });
    outLayers.push(layer);
  }
  for (; li < layers.length; li++) {
    const layer = layers[li]!;
    if (layer.empty) continue;
    outHistory.push({ created, created_by: "", comment: "layer without history" });
    outLayers.push(layer);
  }
  return { history: outHistory.map(dropUndefined), layers: outLayers };
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export async function writeImageManifest(
  deps: ImageWriterDeps,
  result: PlatformResult,
  opts: ImageWriteOptions,
): Promise<WrittenImage> {
  const created =
    opts.epoch !== undefined
      ? new Date(opts.epoch * 1000).toISOString().replace(".000Z", "Z")
      : new Date().toISOString();
  const chainLayers = await layersForChain(
    deps.snapshotter,
    deps.store,
    deps.layerRecords,
    result.snapshot,
    opts.compression,
  );
  const { history, layers } = alignHistory(result.config.history ?? [], chainLayers, created);
  const platform = normalizePlatform(result.platform);
  const config: ImageConfig = {
    ...result.config,
    created: opts.epoch !== undefined ? created : (result.config.created ?? created),
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history: opts.epoch !== undefined ? history.map((h) => ({ ...h, created })) : history,
  };
  const configBytes = canonicalJson(config);
  const configInfo = await deps.store.writeBytes(configBytes);
  const layerMediaType = (l: LayerRecord) =>
    opts.ociMediaTypes
      ? l.blob.mediaType
      : l.blob.mediaType === MediaType.OciLayerGzip
        ? MediaType.DockerLayerGzip
        : MediaType.DockerLayer;
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: opts.ociMediaTypes ? MediaType.OciManifest : MediaType.DockerManifest,
    config: {
      mediaType: opts.ociMediaTypes ? MediaType.OciConfig : MediaType.DockerConfig,
      digest: configInfo.digest,
      size: configInfo.size,
    },
    layers: layers.map((l) => ({ mediaType: layerMediaType(l), digest: l.blob.digest, size: l.blob.size })),
    ...(opts.manifestAnnotations && Object.keys(opts.manifestAnnotations).length
      ? { annotations: { ...opts.manifestAnnotations } }
      : {}),
  };
  const manifestInfo = await deps.store.writeBytes(JSON.stringify(manifest));
  return {
    platform,
    manifest: {
      mediaType: manifest.mediaType!,
      digest: manifestInfo.digest,
      size: manifestInfo.size,
      platform: toOciPlatform(platform),
    },
    config: manifest.config,
    layers: manifest.layers,
  };
}

export async function writeImageIndex(
  store: ContentStore,
  images: readonly WrittenImage[],
  opts: ImageWriteOptions,
): Promise<Descriptor> {
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: opts.ociMediaTypes ? MediaType.OciIndex : MediaType.DockerManifestList,
    manifests: images.map((i) => i.manifest),
    ...(opts.indexAnnotations && Object.keys(opts.indexAnnotations).length
      ? { annotations: { ...opts.indexAnnotations } }
      : {}),
  };
  const info = await store.writeBytes(JSON.stringify(index));
  return { mediaType: index.mediaType!, digest: info.digest, size: info.size };
}
