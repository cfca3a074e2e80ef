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
import {
  type Compression,
  compressionOfMediaType,
  convertLayer,
  type LayerRecord,
  type LayerRecordStore,
  type LayerUploads,
  layerMediaType,
  layersForChain,
  snapshotChain,
} from "./layer-blobs.js";

export interface PlatformResult {
  readonly platform: Platform;
  /** The root filesystem; undefined for an empty (FROM scratch, no changes) image. */
  readonly snapshot?: SnapshotId;
  /** The image config the frontend computed (rootfs is filled in here). */
  readonly config: ImageConfig;
}

/** BuildKit's four places for annotations; manifest ones by platform ("" = every platform). */
export interface ImageAnnotations {
  readonly index: Readonly<Record<string, string>>;
  readonly indexDescriptor: Readonly<Record<string, string>>;
  readonly manifest: Readonly<Record<string, Readonly<Record<string, string>>>>;
  readonly manifestDescriptor: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

export interface ImageWriteOptions {
  /** For layers made by this export; layers reused as they are keep theirs (unless forced). */
  readonly compression: Compression;
  readonly compressionLevel?: number;
  /** Re-encode every layer whose compression differs from `compression` (base image ones too). */
  readonly forceCompression?: boolean;
  /** OCI media types (default) or Docker schema 2 ones. */
  readonly ociMediaTypes: boolean;
  /** Seconds since the epoch (SOURCE_DATE_EPOCH): created times after it are clamped to it. */
  readonly epoch?: number;
  /** Clamp file times in the layers this build made to `epoch` too (rewrite-timestamp). */
  readonly rewriteTimestamp?: boolean;
  readonly annotations?: ImageAnnotations;
  /** Where new layer blobs stream as they are made, when the image is pushed (see LayerUpload). */
  readonly layerUploads?: LayerUploads;
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
 * is empty is dropped and its entry marked empty_layer, as BuildKit's exporter does. An entry with
 * no time of its own takes its layer's (when the step that made it ran, `layerTimes`, parallel to
 * `layers`), an empty-layer entry the time before it, so that a rebuild whose steps all come from
 * the cache writes the same config; `created` is the last resort.
 */
export function alignHistory(
  history: readonly HistoryEntry[],
  layers: readonly LayerRecord[],
  created: string,
  layerTimes: readonly (string | undefined)[] = [],
): { history: HistoryEntry[]; layers: LayerRecord[] } {
  const outHistory: HistoryEntry[] = [];
  const outLayers: LayerRecord[] = [];
  let li = 0;
  let previous: string | undefined;
  for (const h of history) {
    const own = h.created ?? (h.empty_layer ? previous : layerTimes[li]) ?? previous;
    const entry: HistoryEntry = { ...h, created: own ?? created };
    previous = entry.created;
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
    previous = layerTimes[li] ?? previous;
    outHistory.push({ created: previous ?? created, created_by: "", comment: "layer without history" });
    outLayers.push(layer);
  }
  return { history: outHistory.map(dropUndefined), layers: outLayers };
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function isoTime(epoch: number): string {
  return new Date(epoch * 1000).toISOString().replace(".000Z", "Z");
}

/** `created` clamped to the epoch, as BuildKit does with SOURCE_DATE_EPOCH (earlier times stay). */
function clampTime(created: string | undefined, epoch: number | undefined, fallback: string): string {
  if (created === undefined) return fallback;
  if (epoch === undefined) return created;
  const t = Date.parse(created);
  return Number.isNaN(t) || t > epoch * 1000 ? isoTime(epoch) : created;
}

/** The platform key annotations use: `linux/arm64/v8` style, as BuildKit formats it. */
export function annotationPlatformKey(p: Platform): string {
  const n = normalizePlatform(p);
  return [n.os, n.architecture, n.variant].filter(Boolean).join("/");
}

function manifestAnnotationsFor(
  group: Readonly<Record<string, Readonly<Record<string, string>>>> | undefined,
  platform: Platform,
): Record<string, string> {
  return { ...(group?.[""] ?? {}), ...(group?.[annotationPlatformKey(platform)] ?? {}) };
}

/**
 * The layers as the image lists them: forced to the asked compression, and with times clamped
 * (rewrite-timestamp) from the first layer that is not the base image's own — the base image's
 * layers are left as they are, as BuildKit leaves them.
 */
async function finalLayers(
  store: ContentStore,
  layers: readonly LayerRecord[],
  baseDiffIds: readonly string[],
  opts: ImageWriteOptions,
): Promise<LayerRecord[]> {
  const rewrite = opts.rewriteTimestamp === true && opts.epoch !== undefined;
  if (!rewrite && !opts.forceCompression) return [...layers];
  let diverged = false;
  let nonEmpty = 0;
  return Promise.all(
    layers.map((layer) => {
      if (layer.empty) return layer;
      const i = nonEmpty++;
      let immutable = false;
      if (rewrite && !diverged && i < baseDiffIds.length) {
        if (baseDiffIds[i] === layer.diffId) immutable = true;
        else diverged = true;
      } else diverged = true;
      const current = compressionOfMediaType(layer.blob.mediaType);
      const recompress =
        opts.forceCompression === true && current !== "other" && current !== opts.compression;
      const clamp = rewrite && !immutable;
      if (!recompress && !clamp) return layer;
      return convertLayer(
        store,
        layer,
        {
          compression: opts.compression,
          level: opts.compressionLevel,
          epoch: clamp ? opts.epoch : undefined,
        },
        opts.layerUploads,
      );
    }),
  );
}

/** When each snapshot of the chain below `top` was made (base first), as history times. */
async function snapshotTimes(
  snapshotter: Snapshotter,
  top: SnapshotId | undefined,
): Promise<(string | undefined)[]> {
  if (!top) return [];
  const chain = await snapshotChain(snapshotter, top);
  return Promise.all(
    chain.map(async (id) => {
      const at = (await snapshotter.stat(id))?.createdAt;
      return at === undefined ? undefined : new Date(at).toISOString();
    }),
  );
}

export async function writeImageManifest(
  deps: ImageWriterDeps,
  result: PlatformResult,
  opts: ImageWriteOptions,
): Promise<WrittenImage> {
  const created = opts.epoch !== undefined ? isoTime(opts.epoch) : new Date().toISOString();
  const chainLayers = await finalLayers(
    deps.store,
    await layersForChain(
      deps.snapshotter,
      deps.store,
      deps.layerRecords,
      result.snapshot,
      opts.compression,
      opts.compressionLevel,
      // With a rewrite to come, the layers as built are not what is pushed.
      opts.rewriteTimestamp && opts.epoch !== undefined ? undefined : opts.layerUploads,
    ),
    result.config.rootfs?.diff_ids ?? [],
    opts,
  );
  // With SOURCE_DATE_EPOCH every new time is the epoch; without, steps keep the times they ran at.
  const layerTimes = opts.epoch === undefined ? await snapshotTimes(deps.snapshotter, result.snapshot) : [];
  const { history, layers } = alignHistory(result.config.history ?? [], chainLayers, created, layerTimes);
  const platform = normalizePlatform(result.platform);
  const config: ImageConfig = {
    ...result.config,
    // As BuildKit: an image without a time of its own is as old as its newest history entry.
    created: clampTime(
      result.config.created ?? (opts.epoch === undefined ? history.at(-1)?.created : undefined),
      opts.epoch,
      created,
    ),
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history: history.map((h) => ({ ...h, created: clampTime(h.created, opts.epoch, created) })),
  };
  const configBytes = canonicalJson(config);
  const configInfo = await deps.store.writeBytes(configBytes);
  const manifestAnnotations = manifestAnnotationsFor(opts.annotations?.manifest, platform);
  const descriptorAnnotations = manifestAnnotationsFor(opts.annotations?.manifestDescriptor, platform);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: opts.ociMediaTypes ? MediaType.OciManifest : MediaType.DockerManifest,
    config: {
      mediaType: opts.ociMediaTypes ? MediaType.OciConfig : MediaType.DockerConfig,
      digest: configInfo.digest,
      size: configInfo.size,
    },
    layers: layers.map((l) => ({
      mediaType: layerMediaType(l.blob.mediaType, opts.ociMediaTypes),
      digest: l.blob.digest,
      size: l.blob.size,
    })),
    ...(Object.keys(manifestAnnotations).length ? { annotations: manifestAnnotations } : {}),
  };
  const manifestInfo = await deps.store.writeBytes(JSON.stringify(manifest));
  return {
    platform,
    manifest: {
      mediaType: manifest.mediaType!,
      digest: manifestInfo.digest,
      size: manifestInfo.size,
      platform: toOciPlatform(platform),
      ...(Object.keys(descriptorAnnotations).length ? { annotations: descriptorAnnotations } : {}),
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
    ...(opts.annotations && Object.keys(opts.annotations.index).length
      ? { annotations: { ...opts.annotations.index } }
      : {}),
  };
  const info = await store.writeBytes(JSON.stringify(index));
  const descriptorAnnotations = opts.annotations?.indexDescriptor ?? {};
  return {
    mediaType: index.mediaType!,
    digest: info.digest,
    size: info.size,
    ...(Object.keys(descriptorAnnotations).length ? { annotations: { ...descriptorAnnotations } } : {}),
  };
}
