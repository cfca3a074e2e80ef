// Base images from a registry behind the engine's ImageProvider interface (`FROM name:tag`).
import type { Readable } from "node:stream";
import type { ContentStore } from "../content/types.js";
import { formatImageRef, parseImageRef, withDigest } from "../oci/image-ref.js";
import type { Platform } from "../oci/platform.js";
import type { Descriptor } from "../oci/spec.js";
import { teeIntoStore } from "../source/blob-tee.js";
import type { ImageProvider, ResolvedImage } from "../source/image-provider.js";
import type { RegistryClient } from "./client.js";

export class RegistryImageProvider implements ImageProvider {
  constructor(private readonly client: RegistryClient) {}

  /**
   * Pins the reference to what the tag pointed at (the index when there is one, as BuildKit's
   * identifiers do), so that a rebuild of the same definition reads the same image.
   */
  async resolve(ref: string, platform: Platform): Promise<ResolvedImage> {
    const parsed = parseImageRef(ref);
    const image = await this.client.resolveImage(parsed, platform);
    const top = image.indexDigest ?? image.manifestDescriptor.digest;
    return {
      pinnedRef: formatImageRef(withDigest(parsed, top)),
      manifestDigest: image.manifestDescriptor.digest,
      manifest: image.manifest,
      config: image.config,
    };
  }

  async fetchBlob(ref: string, desc: Descriptor, store: ContentStore): Promise<void> {
    await this.client.pullBlobToStore(store, parseImageRef(ref), desc);
  }

  async fetchBlobStreaming(
    ref: string,
    desc: Descriptor,
    store: ContentStore,
    consume: (bytes: Readable) => Promise<void>,
  ): Promise<void> {
    if (await store.has(desc.digest)) return consume(store.read(desc.digest));
    const stream = await this.client.fetchBlob(parseImageRef(ref), desc);
    await teeIntoStore(stream, store, desc, consume, { sourceVerified: true });
  }
}
