// Where the engine's images come from and go to: registries (through one shared client) and OCI
// layouts on disk; resolved configs are remembered for a while so rebuilds don't ask again.
import type { ContentStore } from "../content/types.js";
import type { ResolvedImage as FrontendResolvedImage } from "../frontend/dockerfile/convert/types.js";
import { parseImageRef } from "../oci/image-ref.js";
import { formatPlatform, type Platform } from "../oci/platform.js";
import type { Descriptor } from "../oci/spec.js";
import { RegistryClient } from "../registry/client.js";
import { RegistryImageProvider } from "../registry/image-provider.js";
import type { ImageProvider } from "../source/image-provider.js";
import { OciLayoutImageProvider } from "../source/oci-layout.js";

/** How long a resolved tag is reused without asking the registry again (unless --pull). */
const RESOLVE_TTL_MS = 5 * 60 * 1000;

export interface ImageSourcesOptions {
  readonly insecureRegistries: readonly string[];
}

export class ImageSources {
  readonly registry: RegistryClient;
  private readonly registryProvider: RegistryImageProvider;
  private readonly ociProvider = new OciLayoutImageProvider();
  private readonly resolved = new Map<string, { at: number; image: FrontendResolvedImage }>();

  constructor(opts: ImageSourcesOptions) {
    this.registry = new RegistryClient({ insecureRegistries: [...opts.insecureRegistries] });
    this.registryProvider = new RegistryImageProvider(this.registry);
  }

  /** The provider for an LLB source identifier, and the reference it understands. */
  providerFor(identifier: string): { provider: ImageProvider; ref: string } {
    if (identifier.startsWith("docker-image://"))
      return { provider: this.registryProvider, ref: identifier.slice("docker-image://".length) };
    if (identifier.startsWith("oci-layout://"))
      return { provider: this.ociProvider, ref: identifier.slice("oci-layout://".length) };
    throw new Error(`no image provider for ${identifier}`);
  }

  /** The frontend's view: a pinned reference and the image config for a platform. */
  async resolveConfig(ref: string, platform: Platform, pull: boolean): Promise<FrontendResolvedImage> {
    const key = `${ref}|${formatPlatform(platform)}`;
    const hit = this.resolved.get(key);
    if (hit && !pull && Date.now() - hit.at < RESOLVE_TTL_MS) return hit.image;
    const { provider, ref: inner } = ref.startsWith("oci-layout://")
      ? this.providerFor(ref)
      : { provider: this.registryProvider, ref };
    const image = await provider.resolve(inner, platform);
    const scheme = ref.startsWith("oci-layout://") ? "oci-layout://" : "";
    const resolved = { ref: `${scheme}${image.pinnedRef}`, config: image.config };
    this.resolved.set(key, { at: Date.now(), image: resolved });
    return resolved;
  }

  async push(name: string, root: Descriptor, store: ContentStore, _signal: AbortSignal): Promise<void> {
    await this.registry.pushImage(parseImageRef(name), {
      bytes: await store.readBytes(root.digest),
      mediaType: root.mediaType,
      store,
    });
  }
}
