// Where an imported cache's documents and layer blobs are read from (a registry, a local directory).
import type { ContentStore } from "../../content/types.js";
import type { Descriptor } from "../../oci/spec.js";
import type { ReadCacheManifest } from "./cache-manifest.js";

export interface CacheSource {
  /** How users named it, for messages. */
  readonly name: string;
  /** The cache's records; rejects when the cache (or its manifest) cannot be read. */
  load(): Promise<ReadCacheManifest>;
  /** Makes sure a layer blob is in the content store, verified against its digest. */
  fetchBlob(desc: Descriptor, store: ContentStore): Promise<void>;
}

/** The cache is not there (no such tag, repository or directory): imports warn and go on. */
export class CacheNotFoundError extends Error {
  override name = "CacheNotFoundError";
}
