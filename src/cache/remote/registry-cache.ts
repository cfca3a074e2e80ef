// A build cache in a registry: pushed as layer blobs, a config blob and a tagged index (or image
// manifest), and read back from such a manifest or from an image that carries an inline cache.
import type { Readable } from "node:stream";
import type { ContentStore } from "../../content/types.js";
import { formatImageRef, type ImageRef, parseImageRef } from "../../oci/image-ref.js";
import { type Descriptor, isIndexMediaType, isManifestMediaType } from "../../oci/spec.js";
import type { RegistryClient } from "../../registry/client.js";
import { type ReadCacheManifest, readCacheManifest, type WrittenCacheManifest } from "./cache-manifest.js";
import type { CacheSource } from "./cache-source.js";

/** Config blobs and child manifests are small; a larger one is not a cache document. */
const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024;

async function readAll(stream: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    n += (c as Buffer).length;
    if (n > limit) {
      stream.destroy();
      throw new Error(`${what} is larger than ${limit} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function pushCacheToRegistry(
  client: RegistryClient,
  ref: string,
  written: WrittenCacheManifest,
  store: ContentStore,
): Promise<void> {
  const target = parseImageRef(ref);
  // Blobs first and the tag last, so the tag never names a manifest whose blobs are missing.
  const queue = [...written.blobs];
  const worker = async () => {
    for (let b = queue.shift(); b; b = queue.shift()) {
      const blob = b;
      await client.pushBlob(target, blob, () => store.read(blob.digest));
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  await client.pushManifest(target, written.rootBytes, written.root.mediaType);
}

export class RegistryCacheSource implements CacheSource {
  private readonly ref: ImageRef;

  constructor(
    private readonly client: RegistryClient,
    ref: string,
  ) {
    this.ref = parseImageRef(ref);
  }

  get name(): string {
    return formatImageRef(this.ref);
  }

  async load(): Promise<ReadCacheManifest> {
    const root = await this.client.fetchManifest(this.ref);
    return readCacheManifest(root.bytes, { readBytes: (desc) => this.readBytes(desc) });
  }

  private async readBytes(desc: Descriptor): Promise<Buffer> {
    if (isManifestMediaType(desc.mediaType) || isIndexMediaType(desc.mediaType))
      return (await this.client.fetchManifest(this.ref, desc.digest)).bytes;
    return readAll(await this.client.fetchBlob(this.ref, desc), MAX_DOCUMENT_BYTES, `blob ${desc.digest}`);
  }

  async fetchBlob(desc: Descriptor, store: ContentStore): Promise<void> {
    await this.client.pullBlobToStore(store, this.ref, desc);
  }
}
