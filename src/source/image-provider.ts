// Where base images come from: a registry or an OCI layout on disk, behind one interface, so that
// `FROM`, `docker-image://` and `oci-layout://` contexts resolve through the same path.
import type { Readable } from "node:stream";
import type { ContentStore } from "../content/types.js";
import type { Digest } from "../oci/digest.js";
import type { Platform } from "../oci/platform.js";
import type { Descriptor, ImageConfig, ImageManifest } from "../oci/spec.js";

export interface ResolvedImage {
  /** The reference with the manifest (or index) digest pinned, as it goes into the LLB identifier. */
  readonly pinnedRef: string;
  /** The digest of the platform's manifest. */
  readonly manifestDigest: Digest;
  readonly manifest: ImageManifest;
  readonly config: ImageConfig;
}

export interface ImageProvider {
  /** Resolves a reference for a platform (index → the platform's manifest) and reads its config. */
  resolve(ref: string, platform: Platform): Promise<ResolvedImage>;
  /** Makes sure the blob is in the content store, verified. */
  fetchBlob(ref: string, desc: Descriptor, store: ContentStore): Promise<void>;
  /**
   * fetchBlob that also hands the blob's bytes to `consume` as they arrive (a layer is unpacked
   * while it downloads). Resolves when both are done; the digest is checked only at the end, so
   * whatever `consume` made must be thrown away when this rejects.
   */
  fetchBlobStreaming?(
    ref: string,
    desc: Descriptor,
    store: ContentStore,
    consume: (bytes: Readable) => Promise<void>,
  ): Promise<void>;
}
