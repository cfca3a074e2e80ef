// Re-encodes a layer blob to the compression a cache export forces (gzip ⇄ uncompressed); the
// uncompressed tar, and so the diff ID, stays the same.

import { PassThrough } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import type { ContentStore } from "../../content/types.js";
import type { Compression } from "../../exporter/layer-blobs.js";
import { type Descriptor, MediaType } from "../../oci/spec.js";

function compressionOf(mediaType: string): Compression | "other" {
  if (mediaType === MediaType.OciLayerGzip || mediaType === MediaType.DockerLayerGzip) return "gzip";
  if (mediaType === MediaType.OciLayer || mediaType === MediaType.DockerLayer) return "uncompressed";
  return "other";
}

export async function recompressLayer(
  store: ContentStore,
  blob: Descriptor,
  to: Compression,
  level?: number,
): Promise<Descriptor> {
  const from = compressionOf(blob.mediaType);
  if (from === to) return blob;
  if (from === "other")
    throw new Error(`layer ${blob.digest} has media type ${blob.mediaType}, which cannot be re-encoded`);
  const out = new PassThrough();
  const stages: NodeJS.ReadWriteStream[] = [];
  if (from === "gzip") stages.push(createGunzip());
  if (to === "gzip") stages.push(createGzip({ level: level ?? 6 }));
  const [info] = await Promise.all([
    store.write(out),
    pipeline(store.read(blob.digest), ...(stages as [NodeJS.ReadWriteStream]), out),
  ]);
  return {
    mediaType: to === "gzip" ? MediaType.OciLayerGzip : MediaType.OciLayer,
    digest: info.digest,
    size: info.size,
  };
}
