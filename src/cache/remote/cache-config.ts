// The exported build cache's config document: the layers that exported results are made of, and the
// records (cache keys) naming them with the links between keys. Shaped after BuildKit's cache config
// (application/vnd.buildkit.cacheconfig.v0) so tools that list such manifests recognise it; the keys
// are Kiln's, so only an engine that computes the same key for a vertex can use a record. Kiln's keys
// are computed from portable things (op, input keys, content checksums), so an importer matches any
// prefix of a build by key alone; the links record how keys were derived, for readers and pruning.
import type { Digest } from "../../oci/digest.js";
import { isDigest } from "../../oci/digest.js";
import { type Descriptor, MediaType } from "../../oci/spec.js";

export const CACHE_CONFIG_MEDIA_TYPE = "application/vnd.buildkit.cacheconfig.v0";
/** The image config key holding an inline cache config (base64 of its JSON, as BuildKit writes it). */
export const INLINE_CACHE_KEY = "moby.buildkit.cache.v0";
/** The descriptor annotation carrying a compressed layer's diff ID. */
export const UNCOMPRESSED_ANNOTATION = "containerd.io/uncompressed";

export interface CacheConfigLayer {
  readonly blob: Digest;
  /** Index of the layer below this one in `layers`; -1 at the bottom of a chain. */
  readonly parent: number;
  readonly annotations?: {
    readonly mediaType: string;
    readonly diffID: Digest;
    readonly size: number;
    /** When the step that made the layer ran (RFC 3339): an importer's history keeps that time. */
    readonly createdAt?: string;
  };
}

export interface CacheConfigResult {
  /** Index of the top layer of the output's chain; -1 for an output with no layers (empty filesystem). */
  readonly layer: number;
  /** Which output of the vertex this is (Kiln's vertices may have several); 0 when absent. */
  readonly output?: number;
  readonly createdAt?: string;
}

export interface CacheConfigInput {
  readonly selector?: string;
  /** Index of the record this input's key is, in `records`. */
  readonly link: number;
}

export interface CacheConfigRecord {
  /** The cache key. */
  readonly digest: Digest;
  readonly layers?: readonly CacheConfigResult[];
  /** Per input of the vertex, the records its key was computed from. */
  readonly inputs?: readonly (readonly CacheConfigInput[])[];
}

export interface CacheConfig {
  readonly layers?: readonly CacheConfigLayer[];
  readonly records?: readonly CacheConfigRecord[];
}

/** One layer of an exported result: its blob and the digest of its uncompressed tar. */
export interface CacheLayerBlob {
  readonly blob: Descriptor;
  readonly diffId: Digest;
  /** When the step that made it ran (RFC 3339). */
  readonly createdAt?: string;
}

/** What the exporter knows about one cache key: its links and each output's layer chain, bottom first. */
export interface ExportRecord {
  readonly key: Digest;
  /** The input keys the key was computed from (`KEY#OUTPUT`, or `sel:…` for a selection key). */
  readonly inputKeys: readonly string[];
  readonly outputs: readonly (readonly CacheLayerBlob[])[];
}

/** The config and the layer blobs it refers to (each once), with their diff IDs as annotations. */
export function encodeCacheConfig(
  records: readonly ExportRecord[],
  /** Left out (as for an inline cache, which must not change a reproducible image) when undefined. */
  createdAt?: string,
): { config: CacheConfig; layers: Descriptor[] } {
  const layers: CacheConfigLayer[] = [];
  const blobs: Descriptor[] = [];
  const layerIndex = new Map<string, number>();
  const blobSeen = new Set<Digest>();
  const chainTop = (chain: readonly CacheLayerBlob[]): number => {
    let parent = -1;
    for (const l of chain) {
      const id = `${parent} ${l.blob.digest}`;
      let at = layerIndex.get(id);
      if (at === undefined) {
        at = layers.length;
        layers.push({
          blob: l.blob.digest,
          parent,
          annotations: {
            mediaType: l.blob.mediaType,
            diffID: l.diffId,
            size: l.blob.size,
            ...(l.createdAt ? { createdAt: l.createdAt } : {}),
          },
        });
        layerIndex.set(id, at);
      }
      if (!blobSeen.has(l.blob.digest)) {
        blobSeen.add(l.blob.digest);
        blobs.push({
          mediaType: l.blob.mediaType,
          digest: l.blob.digest,
          size: l.blob.size,
          annotations: { [UNCOMPRESSED_ANNOTATION]: l.diffId },
        });
      }
      parent = at;
    }
    return parent;
  };
  const recordIndex = new Map(records.map((r, i) => [r.key, i]));
  const out: CacheConfigRecord[] = records.map((r) => ({
    digest: r.key,
    layers: r.outputs.map((chain, output) => ({
      layer: chainTop(chain),
      ...(output ? { output } : {}),
      ...(createdAt ? { createdAt } : {}),
    })),
    inputs: r.inputKeys.map((k) => {
      const link = recordIndex.get(k.replace(/#\d+$/, "") as Digest);
      return link === undefined || k.startsWith("sel:") ? [] : [{ link }];
    }),
  }));
  return { config: { layers, records: out }, layers: blobs };
}

/** One imported layer: where its blob is described and what it unpacks to. */
export interface ImportedLayer {
  readonly blob: Descriptor;
  readonly diffId: Digest;
  /** When the exporting builder's step made it (RFC 3339), if the cache says. */
  readonly createdAt?: string;
}

/** A record an importer can use: each output's layer chain, bottom first. */
export interface ImportedRecord {
  readonly key: Digest;
  readonly outputs: readonly (readonly ImportedLayer[])[];
}

export class CacheConfigError extends Error {
  override name = "CacheConfigError";
}

/**
 * The usable records of a config. `described` gives the descriptor a manifest lists for a blob (its
 * media type, size and diff ID annotation); layers a record needs but nobody describes make the
 * record unusable, not the whole config.
 */
export function decodeCacheConfig(
  raw: unknown,
  described: (blob: Digest) => Descriptor | undefined,
): Map<Digest, ImportedRecord> {
  if (!raw || typeof raw !== "object") throw new CacheConfigError("cache config is not a JSON object");
  const cfg = raw as CacheConfig;
  const layers = Array.isArray(cfg.layers) ? cfg.layers : [];
  const records = Array.isArray(cfg.records) ? cfg.records : [];
  const resolved = new Map<number, readonly ImportedLayer[] | undefined>();
  const chain = (index: number, depth = 0): readonly ImportedLayer[] | undefined => {
    if (index === -1) return [];
    if (!Number.isInteger(index) || index < 0 || index >= layers.length || depth > layers.length)
      return undefined;
    if (resolved.has(index)) return resolved.get(index);
    const l = layers[index]!;
    const below = chain(typeof l.parent === "number" ? l.parent : -1, depth + 1);
    const desc = isDigest(String(l.blob)) ? described(l.blob) : undefined;
    const diffId =
      l.annotations?.diffID ?? (desc?.annotations?.[UNCOMPRESSED_ANNOTATION] as Digest | undefined);
    const mediaType = desc?.mediaType ?? l.annotations?.mediaType;
    const size = desc?.size ?? l.annotations?.size;
    let out: readonly ImportedLayer[] | undefined;
    if (below && diffId && isDigest(diffId) && mediaType && typeof size === "number") {
      const createdAt = l.annotations?.createdAt;
      out = [
        ...below,
        {
          blob: { mediaType: ociLayerMediaType(mediaType), digest: l.blob, size },
          diffId,
          ...(typeof createdAt === "string" && !Number.isNaN(Date.parse(createdAt)) ? { createdAt } : {}),
        },
      ];
    }
    resolved.set(index, out);
    return out;
  };
  const out = new Map<Digest, ImportedRecord>();
  for (const r of records) {
    if (!r || !isDigest(String(r.digest)) || !Array.isArray(r.layers) || r.layers.length === 0) continue;
    const outputs: (readonly ImportedLayer[])[] = [];
    let usable = true;
    for (const res of r.layers) {
      const at = res.output ?? 0;
      if (outputs[at] !== undefined) continue; // an alternative result for the same output: first wins
      const c = chain(res.layer);
      if (!c) {
        usable = false;
        break;
      }
      outputs[at] = c;
    }
    if (!usable || outputs.length === 0 || Array.from(outputs).some((o) => o === undefined)) continue;
    out.set(r.digest, { key: r.digest, outputs: [...outputs] });
  }
  return out;
}

/**
 * Layers are recorded locally with OCI media types whatever the cache said, so an image exported
 * from an imported result lists them exactly as the exporting builder's image did.
 */
export function ociLayerMediaType(mediaType: string): string {
  if (mediaType === MediaType.DockerLayerGzip) return MediaType.OciLayerGzip;
  if (mediaType === MediaType.DockerLayer) return MediaType.OciLayer;
  return mediaType;
}
