// The manifest a registry or local cache is stored under, as BuildKit lays it out: an index (or, with
// image-manifest=true, an image manifest) listing the layer blobs with their diff IDs and the cache
// config blob. Reading also accepts an image whose config carries an inline cache.
import type { ContentStore } from "../../content/types.js";
import type { Digest } from "../../oci/digest.js";
import {
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  isManifestMediaType,
  MediaType,
} from "../../oci/spec.js";
import {
  CACHE_CONFIG_MEDIA_TYPE,
  type CacheConfig,
  CacheConfigError,
  decodeCacheConfig,
  type ImportedRecord,
  INLINE_CACHE_KEY,
  UNCOMPRESSED_ANNOTATION,
} from "./cache-config.js";

export interface CacheManifestOptions {
  readonly ociMediaTypes: boolean;
  readonly imageManifest: boolean;
}

export interface WrittenCacheManifest {
  /** The index or manifest to tag. */
  readonly root: Descriptor;
  readonly rootBytes: Buffer;
  /** Every blob the root lists (layers and the config), all in the content store. */
  readonly blobs: readonly Descriptor[];
}

function dockerLayerMediaType(mediaType: string): string {
  if (mediaType === MediaType.OciLayerGzip) return MediaType.DockerLayerGzip;
  if (mediaType === MediaType.OciLayer) return MediaType.DockerLayer;
  return mediaType;
}

/** Writes the config blob and the root document into the store. */
export async function writeCacheManifest(
  store: ContentStore,
  config: CacheConfig,
  layers: readonly Descriptor[],
  opts: CacheManifestOptions,
): Promise<WrittenCacheManifest> {
  const configInfo = await store.writeBytes(JSON.stringify(config));
  const configDesc: Descriptor = {
    mediaType: CACHE_CONFIG_MEDIA_TYPE,
    digest: configInfo.digest,
    size: configInfo.size,
  };
  const layerDescs = layers.map((l) =>
    opts.ociMediaTypes ? l : { ...l, mediaType: dockerLayerMediaType(l.mediaType) },
  );
  let doc: ImageIndex | ImageManifest;
  if (opts.imageManifest) {
    doc = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers: layerDescs };
  } else {
    doc = {
      schemaVersion: 2,
      mediaType: opts.ociMediaTypes ? MediaType.OciIndex : MediaType.DockerManifestList,
      manifests: [...layerDescs, configDesc],
    };
  }
  const rootBytes = Buffer.from(JSON.stringify(doc));
  const info = await store.writeBytes(rootBytes);
  return {
    root: { mediaType: doc.mediaType!, digest: info.digest, size: info.size },
    rootBytes,
    blobs: [...layerDescs, configDesc],
  };
}

/** How a reader reaches the documents a cache manifest refers to. */
export interface CacheDocumentReader {
  /** A small blob (config, child manifest), verified. */
  readBytes(desc: Descriptor): Promise<Buffer>;
}

export interface ReadCacheManifest {
  readonly records: Map<Digest, ImportedRecord>;
  /** Whether the document held a cache at all (a cache manifest, or an image with an inline cache). */
  readonly found: boolean;
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new CacheConfigError(`${what} is not valid JSON`);
  }
}

/** The records of a cache manifest, or of the inline caches of an image (every platform's). */
export async function readCacheManifest(
  bytes: Buffer,
  reader: CacheDocumentReader,
): Promise<ReadCacheManifest> {
  const doc = parseJson(bytes, "cache manifest") as Partial<ImageIndex & ImageManifest>;
  if (Array.isArray(doc.manifests)) {
    const configDesc = doc.manifests.find((m) => m.mediaType === CACHE_CONFIG_MEDIA_TYPE);
    if (configDesc) return { records: await decodeWith(configDesc, doc.manifests, reader), found: true };
    const records = new Map<Digest, ImportedRecord>();
    let found = false;
    for (const m of doc.manifests) {
      if (!isManifestMediaType(m.mediaType)) continue;
      const child = await readCacheManifest(await reader.readBytes(m), reader);
      found ||= child.found;
      for (const [k, r] of child.records) records.set(k, r);
    }
    return { records, found };
  }
  if (doc.config && Array.isArray(doc.layers)) {
    if (doc.config.mediaType === CACHE_CONFIG_MEDIA_TYPE)
      return { records: await decodeWith(doc.config, doc.layers, reader), found: true };
    return readInlineCache(doc as ImageManifest, reader);
  }
  throw new CacheConfigError("cache manifest is neither an index nor an image manifest");
}

async function decodeWith(
  configDesc: Descriptor,
  described: readonly Descriptor[],
  reader: CacheDocumentReader,
): Promise<Map<Digest, ImportedRecord>> {
  const byDigest = new Map(described.map((d) => [d.digest, d]));
  const config = parseJson(await reader.readBytes(configDesc), `cache config ${configDesc.digest}`);
  return decodeCacheConfig(config, (blob) => byDigest.get(blob));
}

/** An image's inline cache: its config's cache key, with blobs from the image's own layers. */
async function readInlineCache(
  manifest: ImageManifest,
  reader: CacheDocumentReader,
): Promise<ReadCacheManifest> {
  const config = parseJson(
    await reader.readBytes(manifest.config),
    `image config ${manifest.config.digest}`,
  ) as {
    rootfs?: { diff_ids?: Digest[] };
    [INLINE_CACHE_KEY]?: unknown;
  };
  const inline = config[INLINE_CACHE_KEY];
  if (inline === undefined) return { records: new Map(), found: false };
  const cacheJson =
    typeof inline === "string" ? parseJson(Buffer.from(inline, "base64"), "inline cache config") : inline;
  const diffIds = config.rootfs?.diff_ids ?? [];
  const described = manifest.layers.map((l, i) =>
    diffIds[i] ? { ...l, annotations: { ...l.annotations, [UNCOMPRESSED_ANNOTATION]: diffIds[i]! } } : l,
  );
  const byDigest = new Map(described.map((d) => [d.digest, d]));
  return { records: decodeCacheConfig(cacheJson, (blob) => byDigest.get(blob)), found: true };
}
