// Writing to a registry: blobs (existence check, cross-repository mount, monolithic or chunked
// upload), manifests by tag or digest, and whole images from a content store in dependency order.
import { createHash } from "node:crypto";
import { PassThrough, type Readable, Transform, type Writable } from "node:stream";
import type { ContentStore } from "../content/types.js";
import { type Digest, digestAlgorithm } from "../oci/digest.js";
import { formatImageRef, type ImageRef } from "../oci/image-ref.js";
import { type Descriptor, type ImageIndex, type ImageManifest, isIndexMediaType } from "../oci/spec.js";
import { RegistryDigestMismatchError, RegistryError } from "./errors.js";
import { bothListeners, type RegistryEventListener } from "./events.js";
import { locationOf, pullScope, pushScope, type RegistryHttp, type RepoRef } from "./registry-http.js";
import { drain } from "./transport.js";

/** Blobs up to this size go up in one PUT; larger ones in chunks of `chunkSize`. */
export const DEFAULT_MONOLITHIC_LIMIT = 32 * 1024 * 1024;
export const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;
const DEFAULT_LAYER_CONCURRENCY = 4;

export interface BlobPushOptions {
  /** Other repositories on the same registry that may hold the blob; a mount is tried from each. */
  readonly mountFrom?: readonly string[];
  /** Force a chunked upload regardless of size. */
  readonly chunked?: boolean;
  readonly chunkSize?: number;
  readonly monolithicLimit?: number;
  readonly onEvent?: RegistryEventListener;
}

export interface BlobPushResult {
  /** `exists`: already there; `mounted`: cross-repo mount; `uploaded`: bytes were sent. */
  readonly outcome: "exists" | "mounted" | "uploaded";
}

export interface ManifestPushOptions {
  /** Tags to put the manifest under; by default the reference's tag, or its digest when it has none. */
  readonly tags?: readonly string[];
  /** Also (or only, when there are no tags) put it by digest. */
  readonly byDigest?: boolean;
  readonly onEvent?: RegistryEventListener;
}

export interface ImagePushSource {
  /** The root document: an image manifest or an index. */
  readonly bytes: Buffer;
  readonly mediaType: string;
  /** Holds every blob and child manifest the root refers to. */
  readonly store: ContentStore;
}

export interface ImagePushOptions extends Omit<BlobPushOptions, "onEvent"> {
  /** How many layers upload at once. */
  readonly concurrency?: number;
  readonly tags?: readonly string[];
  readonly onEvent?: RegistryEventListener;
}

/**
 * A blob upload fed while the blob is being made, before its digest is known (Docker pushes a
 * layer while compressing it the same way): one streamed PATCH, then a PUT naming the digest.
 */
export interface StreamingBlobUpload {
  /** The blob's bytes, in order; end it when they are all written. */
  readonly stream: Writable;
  /** Completes the upload as `desc` once `stream` has ended; the registry checks the digest. */
  commit(desc: Descriptor): Promise<void>;
  /** Gives the upload up (the registry drops it in time). */
  abort(reason?: Error): void;
}

export class RegistryPusher {
  constructor(
    private readonly http: RegistryHttp,
    private readonly emit: RegistryEventListener,
  ) {}

  /**
   * Opens an upload to `ref` whose bytes come through a stream. A streamed body cannot be sent
   * twice, so a failure is final: the caller then pushes the blob the ordinary way.
   */
  async startStreamingUpload(
    ref: RepoRef,
    opts: { onEvent?: RegistryEventListener } = {},
  ): Promise<StreamingBlobUpload> {
    const emit = bothListeners(this.emit, opts.onEvent);
    const repo = `${ref.registry}/${ref.repository}`;
    const what = `streamed blob upload to ${repo}`;
    const scopes = [pushScope(ref.repository)];
    const started = await this.http.call(ref.registry, {
      method: "POST",
      target: `/v2/${ref.repository}/blobs/uploads/`,
      scopes,
      what,
      accept: [202],
    });
    drain(started.body);
    const url = locationOf(started, ref.registry, what);
    const body = new PassThrough();
    // Its failures reach the writer through `destroyed` and commit's rejection.
    body.on("error", () => {});
    let sent = false;
    const patched = this.http.call(ref.registry, {
      method: "PATCH",
      target: url,
      headers: { "content-type": "application/octet-stream" },
      body: () => {
        if (sent) throw new RegistryError(`${what}: the registry asked for the bytes again`, ref.registry);
        sent = true;
        return body;
      },
      scopes,
      what,
      accept: [202],
    });
    // Awaited by commit; a failure before then must not count as unhandled.
    patched.catch(() => {});
    return {
      stream: body,
      abort: (reason) => body.destroy(reason ?? new Error(`${what} given up`)),
      commit: async (desc) => {
        const res = await patched;
        drain(res.body);
        const put = locationOf(res, ref.registry, what);
        put.searchParams.set("digest", desc.digest);
        const done = await this.http.call(ref.registry, {
          method: "PUT",
          target: put,
          scopes,
          what: `blob ${desc.digest} of ${repo}`,
          accept: [201, 204],
        });
        drain(done.body);
        const stored = done.headers["docker-content-digest"];
        if (typeof stored === "string" && stored !== desc.digest) {
          throw new RegistryDigestMismatchError(
            `registry ${ref.registry} stored blob ${desc.digest} of ${repo} under digest ${stored}`,
            ref.registry,
            desc.digest,
          );
        }
        emit({ type: "blob-pushed", ref: repo, digest: desc.digest, size: desc.size });
      },
    };
  }

  async pushBlob(
    ref: RepoRef,
    desc: Descriptor,
    openStream: () => Readable,
    opts: BlobPushOptions = {},
  ): Promise<BlobPushResult> {
    const emit = bothListeners(this.emit, opts.onEvent);
    const repo = `${ref.registry}/${ref.repository}`;
    const what = `blob ${desc.digest} of ${repo}`;
    const mountFrom = (opts.mountFrom ?? []).filter((r) => r !== ref.repository);
    const scopes = [pushScope(ref.repository), ...mountFrom.map(pullScope)];

    const head = await this.http.call(ref.registry, {
      method: "HEAD",
      target: `/v2/${ref.repository}/blobs/${desc.digest}`,
      scopes,
      what,
      accept: [200, 404],
    });
    drain(head.body);
    if (head.status === 200) {
      emit({ type: "blob-exists", ref: repo, digest: desc.digest, size: desc.size });
      return { outcome: "exists" };
    }

    let uploadUrl: URL | undefined;
    for (const from of mountFrom) {
      const query = new URLSearchParams({ mount: desc.digest, from });
      const res = await this.http.call(ref.registry, {
        method: "POST",
        target: `/v2/${ref.repository}/blobs/uploads/?${query}`,
        scopes,
        what: `mount of ${what} from ${from}`,
        accept: [201, 202],
      });
      drain(res.body);
      emit({
        type: "blob-mount",
        ref: repo,
        digest: desc.digest,
        from,
        status: res.status,
        mounted: res.status === 201,
      });
      if (res.status === 201) return { outcome: "mounted" };
      // 202: the registry started an ordinary upload instead; use it rather than start another.
      uploadUrl = locationOf(res, ref.registry, `upload of ${what}`);
      break;
    }
    let chunkMin = 0;
    if (!uploadUrl) {
      const res = await this.http.call(ref.registry, {
        method: "POST",
        target: `/v2/${ref.repository}/blobs/uploads/`,
        scopes,
        what: `upload of ${what}`,
        accept: [202],
      });
      drain(res.body);
      uploadUrl = locationOf(res, ref.registry, `upload of ${what}`);
      chunkMin = Number(res.headers["oci-chunk-min-length"]) || 0;
    }

    const chunked = opts.chunked || desc.size > (opts.monolithicLimit ?? DEFAULT_MONOLITHIC_LIMIT);
    emit({ type: "blob-upload-start", ref: repo, digest: desc.digest, size: desc.size, chunked });
    let sent = 0;
    const count = (n: number) => {
      sent += n;
      emit({
        type: "blob-progress",
        direction: "push",
        ref: repo,
        digest: desc.digest,
        bytes: sent,
        total: desc.size,
      });
    };
    let finalUrl: URL;
    let finalBody: (() => Readable) | undefined;
    if (chunked) {
      const chunkSize = Math.max(opts.chunkSize ?? DEFAULT_CHUNK_SIZE, chunkMin);
      finalUrl = await this.uploadChunks(ref, desc, uploadUrl, openStream(), chunkSize, count, emit, what);
    } else {
      finalUrl = uploadUrl;
      finalBody = () => {
        // A retried PUT re-sends from the start, so the byte count starts over with it.
        sent = 0;
        const src = openStream();
        const counter = countingStream(count);
        src.on("error", (err) => counter.destroy(err));
        return src.pipe(counter);
      };
    }
    const put = new URL(finalUrl);
    put.searchParams.set("digest", desc.digest);
    const res = await this.http.call(ref.registry, {
      method: "PUT",
      target: put,
      headers: finalBody
        ? { "content-type": "application/octet-stream", "content-length": String(desc.size) }
        : { "content-type": "application/octet-stream" },
      body: finalBody,
      scopes,
      what: `upload of ${what}`,
      accept: [201, 204],
    });
    drain(res.body);
    const stored = res.headers["docker-content-digest"];
    if (typeof stored === "string" && stored !== desc.digest) {
      throw new RegistryDigestMismatchError(
        `registry ${ref.registry} stored ${what} under digest ${stored}`,
        ref.registry,
        desc.digest,
      );
    }
    emit({ type: "blob-pushed", ref: repo, digest: desc.digest, size: desc.size });
    return { outcome: "uploaded" };
  }

  /** PATCHes `chunkSize` pieces in order, following each answer's Location and checking its Range. */
  private async uploadChunks(
    ref: RepoRef,
    desc: Descriptor,
    startUrl: URL,
    source: Readable,
    chunkSize: number,
    count: (n: number) => void,
    emit: RegistryEventListener,
    what: string,
  ): Promise<URL> {
    let url = startUrl;
    let offset = 0;
    for await (const chunk of rechunk(source, chunkSize)) {
      const end = offset + chunk.length - 1;
      const res = await this.http.call(ref.registry, {
        method: "PATCH",
        target: url,
        headers: { "content-type": "application/octet-stream", "content-range": `${offset}-${end}` },
        body: chunk,
        scopes: [pushScope(ref.repository)],
        what: `upload of ${what} (bytes ${offset}-${end})`,
        accept: [202],
      });
      drain(res.body);
      emit({
        type: "blob-chunk",
        ref: `${ref.registry}/${ref.repository}`,
        digest: desc.digest,
        start: offset,
        end,
        status: res.status,
      });
      const range = /^(?:bytes=)?0-(\d+)$/.exec(String(res.headers.range ?? ""));
      if (range && Number(range[1]) !== end) {
        throw new RegistryError(
          `registry ${ref.registry} acknowledged bytes 0-${range[1]} of ${what} after we sent 0-${end}`,
          ref.registry,
          res.status,
        );
      }
      url = locationOf(res, ref.registry, `upload of ${what}`);
      offset = end + 1;
      count(chunk.length);
    }
    if (offset !== desc.size) {
      throw new RegistryError(
        `${what}: the source gave ${offset} bytes, but the descriptor says ${desc.size}`,
        ref.registry,
      );
    }
    return url;
  }

  /** Puts a manifest or index; returns its digest. The registry's answer must agree with it. */
  async pushManifest(
    ref: ImageRef,
    bytes: Buffer,
    mediaType: string,
    opts: ManifestPushOptions = {},
  ): Promise<Digest> {
    const emit = bothListeners(this.emit, opts.onEvent);
    const digest = digestOf(bytes, ref.digest);
    if (ref.digest && ref.digest !== digest) {
      throw new RegistryDigestMismatchError(
        `the manifest to push to ${formatImageRef(ref)} has digest ${digest}`,
        ref.registry,
        ref.digest,
        digest,
      );
    }
    const references = [...(opts.tags ?? (ref.tag ? [ref.tag] : []))];
    if (opts.byDigest || references.length === 0) references.push(digest);
    for (const reference of references) {
      const shown = `${ref.registry}/${ref.repository}${reference.includes(":") ? "@" : ":"}${reference}`;
      const res = await this.http.call(ref.registry, {
        method: "PUT",
        target: `/v2/${ref.repository}/manifests/${reference}`,
        headers: { "content-type": mediaType },
        body: bytes,
        scopes: [pushScope(ref.repository)],
        what: `manifest ${shown}`,
        accept: [201, 200, 204],
      });
      drain(res.body);
      const stored = res.headers["docker-content-digest"];
      if (typeof stored === "string" && stored !== digest) {
        throw new RegistryDigestMismatchError(
          `registry ${ref.registry} stored manifest ${shown} under digest ${stored}, expected ${digest}`,
          ref.registry,
          digest,
        );
      }
      emit({ type: "manifest-pushed", ref: shown, digest, mediaType, reference });
    }
    return digest;
  }

  /**
   * Pushes an image or index and everything it refers to: layers (in parallel, bounded), then
   * configs, then child manifests by digest, then the root by tag — so that the registry never
   * sees a manifest whose blobs it does not have.
   */
  async pushImage(ref: ImageRef, source: ImagePushSource, opts: ImagePushOptions = {}): Promise<Digest> {
    const manifests: { desc: Descriptor; bytes: Buffer; manifest: ImageManifest }[] = [];
    const indexes: { desc: Descriptor; bytes: Buffer }[] = [];
    const collect = async (mediaType: string, bytes: Buffer, desc: Descriptor | undefined): Promise<void> => {
      const doc = JSON.parse(bytes.toString("utf8")) as ImageManifest | ImageIndex;
      const mt = doc.mediaType ?? mediaType;
      if (isIndexMediaType(mt)) {
        for (const child of (doc as ImageIndex).manifests) {
          const childBytes = await readFromStore(source.store, child.digest, ref);
          await collect(child.mediaType, childBytes, child);
        }
        if (desc) indexes.push({ desc, bytes });
      } else if (desc) {
        manifests.push({ desc, bytes, manifest: doc as ImageManifest });
      } else {
        manifests.push({
          desc: { mediaType: mt, digest: digestOf(bytes), size: bytes.length },
          bytes,
          manifest: doc as ImageManifest,
        });
      }
    };
    await collect(source.mediaType, source.bytes, undefined);
    const rootIsManifest = !isIndexMediaType(
      (JSON.parse(source.bytes.toString("utf8")) as { mediaType?: string }).mediaType ?? source.mediaType,
    );

    const layers = uniqueByDigest(manifests.flatMap((m) => m.manifest.layers));
    const configs = uniqueByDigest(manifests.map((m) => m.manifest.config));
    const blobOpts: BlobPushOptions = { ...opts };
    const pushFromStore = (d: Descriptor) =>
      this.pushBlob(ref, d, () => source.store.read(d.digest), blobOpts).then(() => undefined);
    await forEachBounded(layers, opts.concurrency ?? DEFAULT_LAYER_CONCURRENCY, pushFromStore);
    await forEachBounded(configs, opts.concurrency ?? DEFAULT_LAYER_CONCURRENCY, pushFromStore);

    const pushOpts = { onEvent: opts.onEvent };
    // When the root is a lone manifest it is pushed below, by tag.
    const children = rootIsManifest ? manifests.slice(0, -1) : manifests;
    for (const m of children) {
      await this.pushManifest(
        { ...ref, tag: undefined, digest: m.desc.digest },
        m.bytes,
        m.desc.mediaType,
        pushOpts,
      );
    }
    for (const idx of indexes) {
      await this.pushManifest(
        { ...ref, tag: undefined, digest: idx.desc.digest },
        idx.bytes,
        idx.desc.mediaType,
        pushOpts,
      );
    }
    return this.pushManifest({ ...ref, digest: undefined }, source.bytes, source.mediaType, {
      ...pushOpts,
      tags: opts.tags,
    });
  }
}

function digestOf(bytes: Buffer, like?: Digest): Digest {
  const alg = like ? digestAlgorithm(like) : "sha256";
  return `${alg}:${createHash(alg).update(bytes).digest("hex")}` as Digest;
}

async function readFromStore(store: ContentStore, digest: Digest, ref: ImageRef): Promise<Buffer> {
  if (!(await store.has(digest))) {
    throw new RegistryError(
      `cannot push ${formatImageRef(ref)}: manifest ${digest} it refers to is not in the content store`,
      ref.registry,
    );
  }
  return store.readBytes(digest);
}

function uniqueByDigest(descs: Descriptor[]): Descriptor[] {
  const seen = new Map<string, Descriptor>();
  for (const d of descs) if (!seen.has(d.digest)) seen.set(d.digest, d);
  return [...seen.values()];
}

/** Runs `fn` over items with at most `limit` in flight; the first failure is thrown once all have settled. */
async function forEachBounded<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const worker = async () => {
    while (next < items.length && errors.length === 0) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        errors.push(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (errors.length > 0) throw errors[0];
}

/** Re-cuts a stream into pieces of exactly `size` bytes (the last may be shorter). */
async function* rechunk(source: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let have = 0;
  for await (const data of source) {
    let buf = data as Buffer;
    while (buf.length > 0) {
      const take = Math.min(size - have, buf.length);
      parts.push(buf.subarray(0, take));
      have += take;
      buf = buf.subarray(take);
      if (have === size) {
        yield Buffer.concat(parts);
        parts = [];
        have = 0;
      }
    }
  }
  if (have > 0) yield Buffer.concat(parts);
}

function countingStream(count: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      count(chunk.length);
      done(null, chunk);
    },
  });
}
