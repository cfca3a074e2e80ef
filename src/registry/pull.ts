// Reading from a registry: resolving a reference to a descriptor, fetching manifests and indexes
// (verified against their digests), picking a platform's image, and streaming verified blobs.
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream";
import type { ContentStore } from "../content/types.js";
import { type Digest, digestAlgorithm, isDigest } from "../oci/digest.js";
import { formatImageRef, type ImageRef, withDigest } from "../oci/image-ref.js";
import { bestPlatformMatch, formatPlatform, type Platform } from "../oci/platform.js";
import {
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  isIndexMediaType,
  isManifestMediaType,
  MediaType,
} from "../oci/spec.js";
import { NoMatchingPlatformError, RegistryDigestMismatchError, RegistryError } from "./errors.js";
import { bothListeners, type RegistryEventListener } from "./events.js";
import { pullScope, type RegistryHttp, type RepoRef } from "./registry-http.js";
import { readBody } from "./transport.js";
import { VerifiedStream } from "./verified-stream.js";

/** Every manifest kind we can read, so the registry never down-converts to schema 1. */
export const MANIFEST_ACCEPT = [
  MediaType.OciIndex,
  MediaType.DockerManifestList,
  MediaType.OciManifest,
  MediaType.DockerManifest,
].join(", ");

/** Manifests are small documents; a larger one is an error, not something to buffer. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

export interface FetchedManifest {
  readonly descriptor: Descriptor;
  readonly bytes: Buffer;
  readonly manifest: ImageManifest | ImageIndex;
}

export interface ResolvedRegistryImage {
  /** The reference pinned to the platform's manifest digest (the tag, if any, kept for display). */
  readonly ref: ImageRef;
  /** The index the manifest was chosen from, when the reference named an index. */
  readonly indexDigest?: Digest;
  readonly manifestDescriptor: Descriptor;
  readonly manifest: ImageManifest;
  readonly manifestBytes: Buffer;
  readonly configDescriptor: Descriptor;
  readonly config: ImageConfig;
  readonly configBytes: Buffer;
}

export interface BlobFetchOptions {
  readonly onEvent?: RegistryEventListener;
}

export class RegistryPuller {
  constructor(
    private readonly http: RegistryHttp,
    private readonly emit: RegistryEventListener,
  ) {}

  /** The descriptor a reference points at: HEAD, with GET as the fallback for registries that answer HEAD poorly. */
  async resolve(ref: ImageRef): Promise<Descriptor> {
    const reference = ref.digest ?? ref.tag ?? "latest";
    const what = `manifest ${formatImageRef(ref)}`;
    let head: Awaited<ReturnType<RegistryHttp["call"]>> | undefined;
    try {
      head = await this.http.call(ref.registry, {
        method: "HEAD",
        target: `/v2/${ref.repository}/manifests/${reference}`,
        headers: { accept: MANIFEST_ACCEPT },
        scopes: [pullScope(ref.repository)],
        what,
        accept: [200],
      });
      head.body.resume();
    } catch (err) {
      // Not found and refused are answers, and 5xx already had its retries; other statuses
      // (405 and the like, from registries that mishandle HEAD) get the GET's chance.
      const status = err instanceof RegistryError ? err.status : undefined;
      if (status === undefined || status >= 500 || status === 404 || status === 401 || status === 403)
        throw err;
    }
    if (head) {
      const headerDigest = head.headers["docker-content-digest"];
      const mediaType = stripParams(head.headers["content-type"]);
      const size = Number(head.headers["content-length"]);
      const digest =
        ref.digest ?? (typeof headerDigest === "string" && isDigest(headerDigest) ? headerDigest : undefined);
      if (ref.digest && typeof headerDigest === "string" && headerDigest !== ref.digest) {
        throw new RegistryDigestMismatchError(
          `registry ${ref.registry} answered ${what} with digest ${headerDigest}`,
          ref.registry,
          ref.digest,
        );
      }
      if (
        digest &&
        mediaType &&
        (isIndexMediaType(mediaType) || isManifestMediaType(mediaType)) &&
        size > 0
      ) {
        return { mediaType, digest, size };
      }
    }
    return (await this.fetchManifest(ref)).descriptor;
  }

  /** A manifest or index by the reference's tag/digest (or `digest`, in the same repository), verified. */
  async fetchManifest(ref: ImageRef, digest?: Digest): Promise<FetchedManifest> {
    const reference = digest ?? ref.digest ?? ref.tag ?? "latest";
    const shown = digest ? formatImageRef(withDigest(ref, digest)) : formatImageRef(ref);
    const what = `manifest ${shown}`;
    const res = await this.http.call(ref.registry, {
      method: "GET",
      target: `/v2/${ref.repository}/manifests/${reference}`,
      headers: { accept: MANIFEST_ACCEPT },
      scopes: [pullScope(ref.repository)],
      what,
      accept: [200],
    });
    let bytes: Buffer;
    try {
      bytes = await readBody(res.body, MAX_MANIFEST_BYTES);
    } catch (err) {
      throw new RegistryError(
        `registry ${ref.registry}: reading ${what}: ${(err as Error).message}`,
        ref.registry,
      );
    }
    const headerDigest = res.headers["docker-content-digest"];
    const expected =
      digest ??
      ref.digest ??
      (typeof headerDigest === "string" && isDigest(headerDigest) ? headerDigest : undefined);
    const actual = hashAs(expected, bytes);
    if (expected && actual !== expected) {
      throw new RegistryDigestMismatchError(
        `registry ${ref.registry} sent ${what} whose content has digest ${actual}, expected ${expected}`,
        ref.registry,
        expected,
        actual,
      );
    }
    let manifest: ImageManifest | ImageIndex;
    try {
      manifest = JSON.parse(bytes.toString("utf8"));
    } catch {
      throw new RegistryError(`registry ${ref.registry} sent ${what} that is not JSON`, ref.registry);
    }
    const mediaType = manifest.mediaType ?? stripParams(res.headers["content-type"]) ?? "";
    const known = isIndexMediaType(mediaType) || isManifestMediaType(mediaType);
    const shaped = isIndexMediaType(mediaType)
      ? Array.isArray((manifest as ImageIndex).manifests)
      : Boolean((manifest as ImageManifest).config) && Array.isArray((manifest as ImageManifest).layers);
    if (!known || !shaped) {
      throw new RegistryError(
        `registry ${ref.registry} sent ${what} of media type ${JSON.stringify(mediaType)}, which is not an ` +
          "OCI or Docker schema 2 manifest or index",
        ref.registry,
      );
    }
    return { descriptor: { mediaType, digest: expected ?? actual, size: bytes.length }, bytes, manifest };
  }

  /** The image for a platform: through the index when the reference names one, with its config. */
  async resolveImage(ref: ImageRef, platform: Platform): Promise<ResolvedRegistryImage> {
    const top = await this.fetchManifest(ref);
    let indexDigest: Digest | undefined;
    let chosen = top;
    if (isIndexMediaType(top.descriptor.mediaType)) {
      indexDigest = top.descriptor.digest;
      const candidates = (top.manifest as ImageIndex).manifests.filter(
        (d) => isManifestMediaType(d.mediaType) && d.platform && d.platform.os !== "unknown",
      );
      const match = bestPlatformMatch(platform, candidates);
      if (!match) {
        const available = candidates.map((d) => formatPlatform(d.platform!));
        throw new NoMatchingPlatformError(
          `${formatImageRef(ref)} has no image for ${formatPlatform(platform)}; ` +
            `available: ${available.join(", ") || "none"}`,
          ref.registry,
          available,
        );
      }
      chosen = await this.fetchManifest(ref, match.digest);
      if (!isManifestMediaType(chosen.descriptor.mediaType)) {
        throw new RegistryError(
          `${formatImageRef(ref)}: the index entry for ${formatPlatform(platform)} (${match.digest}) is not an image manifest`,
          ref.registry,
        );
      }
    }
    const manifest = chosen.manifest as ImageManifest;
    const pinned = withDigest(ref, chosen.descriptor.digest);
    const configBytes = await this.fetchBlobBytes(pinned, manifest.config, MAX_CONFIG_BYTES);
    let config: ImageConfig;
    try {
      config = JSON.parse(configBytes.toString("utf8"));
    } catch {
      throw new RegistryError(
        `registry ${ref.registry}: the config ${manifest.config.digest} of ${formatImageRef(pinned)} is not JSON`,
        ref.registry,
      );
    }
    return {
      ref: pinned,
      indexDigest,
      manifestDescriptor: chosen.descriptor,
      manifest,
      manifestBytes: chosen.bytes,
      configDescriptor: manifest.config,
      config,
      configBytes,
    };
  }

  /**
   * A stream of the blob that errors (instead of ending) when its bytes are not the descriptor's
   * digest and size. Redirects to storage backends are followed by the transport.
   */
  async fetchBlob(ref: RepoRef, desc: Descriptor, opts: BlobFetchOptions = {}): Promise<Readable> {
    const shown = `${ref.registry}/${ref.repository}`;
    const what = `blob ${desc.digest} of ${shown}`;
    const res = await this.http.call(ref.registry, {
      method: "GET",
      target: `/v2/${ref.repository}/blobs/${desc.digest}`,
      scopes: [pullScope(ref.repository)],
      what,
      accept: [200],
    });
    const emit = bothListeners(this.emit, opts.onEvent);
    let received = 0;
    const verifier = new VerifiedStream(
      desc.digest,
      desc.size,
      (why, actual) =>
        new RegistryDigestMismatchError(
          `registry ${ref.registry} sent ${what} that does not match its descriptor: ${why} ` +
            `(expected ${desc.digest}, ${desc.size} bytes)`,
          ref.registry,
          desc.digest,
          actual,
        ),
      (n) => {
        received += n;
        emit({
          type: "blob-progress",
          direction: "pull",
          ref: shown,
          digest: desc.digest,
          bytes: received,
          total: desc.size,
        });
      },
    );
    pipeline(res.body, verifier, () => {
      // Errors reach the consumer through `verifier`, which pipeline destroys with them.
    });
    return verifier;
  }

  /** A small blob (a config) read whole, verified. */
  async fetchBlobBytes(ref: RepoRef, desc: Descriptor, limit: number): Promise<Buffer> {
    if (desc.size > limit) {
      throw new RegistryError(
        `registry ${ref.registry}: blob ${desc.digest} is ${desc.size} bytes, more than the ${limit} allowed here`,
        ref.registry,
      );
    }
    const stream = await this.fetchBlob(ref, desc);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /** Copies a blob into the store (verified on the way); nothing is fetched when the store has it. */
  async pullBlobToStore(
    store: ContentStore,
    ref: RepoRef,
    desc: Descriptor,
    opts: BlobFetchOptions = {},
  ): Promise<{ fetched: boolean }> {
    if (await store.has(desc.digest)) return { fetched: false };
    const stream = await this.fetchBlob(ref, desc, opts);
    await store.write(stream, { expected: desc.digest, expectedSize: desc.size, sourceVerified: true });
    bothListeners(
      this.emit,
      opts.onEvent,
    )({
      type: "blob-pulled",
      ref: `${ref.registry}/${ref.repository}`,
      digest: desc.digest,
      size: desc.size,
    });
    return { fetched: true };
  }
}

function stripParams(contentType: string | undefined): string | undefined {
  const v = contentType?.split(";")[0]?.trim();
  return v || undefined;
}

function hashAs(expected: Digest | undefined, bytes: Buffer): Digest {
  const alg = expected ? digestAlgorithm(expected) : "sha256";
  return `${alg}:${createHash(alg).update(bytes).digest("hex")}` as Digest;
}
