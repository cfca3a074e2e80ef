// Base images from a registry behind the engine's ImageProvider interface (`FROM name:tag`).
import type { ContentStore } from "../content/types.js";
import { formatImageRef, parseImageRef, withDigest } from "../oci/image-ref.js";
import type { Platform } from "../oci/platform.js";
import type { Descriptor } from "../oci/spec.js";
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
}
