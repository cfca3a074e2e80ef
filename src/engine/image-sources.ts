// Where the engine's images come from and go to: registries (through one shared client) and OCI
// layouts on disk; resolved configs are remembered for a while so rebuilds don't ask again. A
// build whose client lends registry credentials (its session) works through a view of its own.
import type { ContentStore } from "../content/types.js";
import type { ResolvedImage as FrontendResolvedImage } from "../frontend/dockerfile/convert/types.js";
import { parseImageRef } from "../oci/image-ref.js";
import { formatPlatform, type Platform } from "../oci/platform.js";
import type { Descriptor } from "../oci/spec.js";
import { RegistryClient } from "../registry/client.js";
import { RegistryImageProvider } from "../registry/image-provider.js";
import type { StreamingBlobUpload } from "../registry/push.js";
import type { BuildSession } from "../session/types.js";
import type { ImageProvider } from "../source/image-provider.js";
import { OciLayoutImageProvider } from "../source/oci-layout.js";

/** How long a resolved tag is reused without asking the registry again (unless --pull). */
const RESOLVE_TTL_MS = 5 * 60 * 1000;

export interface ImageSourcesOptions {
  readonly insecureRegistries: readonly string[];
  /** Registry host → mirrors tried first for pulls. */
  readonly mirrors?: Readonly<Record<string, readonly string[]>>;
}

type ResolvedCache = Map<string, { at: number; image: FrontendResolvedImage }>;

export class ImageSources {
  readonly registry: RegistryClient;
  private readonly registryProvider: RegistryImageProvider;
  private readonly ociProvider: OciLayoutImageProvider;
  private readonly resolved: ResolvedCache;

  constructor(opts: ImageSourcesOptions);
  constructor(opts: ImageSourcesOptions, view: { registry: RegistryClient; parent: ImageSources });
  constructor(opts: ImageSourcesOptions, view?: { registry: RegistryClient; parent: ImageSources }) {
    this.registry =
      view?.registry ??
      new RegistryClient({ insecureRegistries: [...opts.insecureRegistries], mirrors: opts.mirrors ?? {} });
    this.registryProvider = new RegistryImageProvider(this.registry);
    this.ociProvider = view?.parent.ociProvider ?? new OciLayoutImageProvider();
    this.resolved = view?.parent.resolved ?? new Map();
  }

  /**
   * The sources for one build: when its session can answer for registry credentials, a registry
   * client that asks the session first (then this engine host's config), sharing connections and
   * the resolve cache (whose entries are kept apart per credentials identity).
   */
  forBuild(session: BuildSession): ImageSources {
    const ask = session.registryCredentials?.bind(session);
    if (!ask) return this;
    return new ImageSources(
      { insecureRegistries: [] },
      { registry: this.registry.forBuild(ask), parent: this },
    );
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
    const oci = ref.startsWith("oci-layout://");
    // What one identity resolved (a private image's digest and config) is not served to another.
    const who = oci ? "" : await this.registry.credentialsIdentity(parseImageRef(ref).registry);
    const key = `${ref}|${formatPlatform(platform)}|${who}`;
    const hit = this.resolved.get(key);
    if (hit && !pull && Date.now() - hit.at < RESOLVE_TTL_MS) return hit.image;
    const { provider, ref: inner } = oci ? this.providerFor(ref) : { provider: this.registryProvider, ref };
    const image = await provider.resolve(inner, platform);
    const scheme = oci ? "oci-layout://" : "";
    const resolved = { ref: `${scheme}${image.pinnedRef}`, config: image.config };
    this.resolved.set(key, { at: Date.now(), image: resolved });
    return resolved;
  }

  /** An upload to `repository` (`registry/repo`) fed while a layer is compressed, before the push. */
  startLayerUpload(repository: string): Promise<StreamingBlobUpload> {
    const ref = parseImageRef(repository);
    return this.registry.startStreamingUpload({ registry: ref.registry, repository: ref.repository });
  }

  async push(name: string, root: Descriptor, store: ContentStore, _signal: AbortSignal): Promise<void> {
    await this.registry.pushImage(parseImageRef(name), {
      bytes: await store.readBytes(root.digest),
      mediaType: root.mediaType,
      store,
    });
  }
}
