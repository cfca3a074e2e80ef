// Unpacks an image's layers into snapshots once per layer chain, shared by every build on the
// engine, and remembers each snapshot's original blob so exports reuse it instead of re-compressing.
// A registry's layer is unpacked while it downloads; a lazy unpack (imported cache results) only
// fetches the blobs and leaves each layer to the snapshotter to apply when first read.

import type { Readable } from "node:stream";
import type { ContentStore } from "../content/types.js";
import type { LayerRecordStore } from "../exporter/layer-blobs.js";
import { type Digest, sha256Digest } from "../oci/digest.js";
import { type Descriptor, LAYER_CREATED_ANNOTATION } from "../oci/spec.js";
import type { SnapshotId, SnapshotInfo, Snapshotter } from "../snapshot/types.js";
import type { ImageProvider, ResolvedImage } from "./image-provider.js";
import { decompressedLayer, verifiedLayerTar } from "./layer-stream.js";

/** chain id (the OCI image-spec's ChainID of the layers so far) → snapshot. */
export interface ChainSnapshotIndex {
  get(chainId: Digest): Promise<SnapshotId | undefined>;
  put(chainId: Digest, snapshot: SnapshotId): Promise<void>;
}

/** Layers downloading or being applied at once in one unpack. */
const LAYERS_AHEAD = 2;

/** When a layer may start: its download after `turn`, its apply once `parent` is there. */
interface LayerOrder {
  readonly parent: Promise<SnapshotId | undefined>;
  readonly turn: Promise<void>;
}

export interface UnpackOptions {
  /** Fetch the blobs, but apply each layer only when its snapshot is first read. */
  readonly lazy?: boolean;
}

export interface ImageUnpackerDeps {
  readonly snapshotter: Snapshotter;
  readonly store: ContentStore;
  readonly chains: ChainSnapshotIndex;
  readonly layerRecords: LayerRecordStore;
}

/** ChainID(L0) = DiffID(L0); ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln)). */
export function chainIds(diffIds: readonly Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : sha256Digest(`${out[out.length - 1]} ${d}`));
  return out;
}

export class ImageUnpacker {
  private readonly inflight = new Map<Digest, Promise<SnapshotId>>();

  constructor(private readonly deps: ImageUnpackerDeps) {}

  /**
   * The snapshot holding the image's root filesystem (undefined for an image with no layers).
   * `lazy` fetches the blobs but leaves each layer to be applied when its snapshot is first read.
   */
  async unpack(
    provider: ImageProvider,
    image: ResolvedImage,
    onLayer?: (desc: Descriptor, done: boolean) => void,
    opts: UnpackOptions = {},
  ): Promise<SnapshotId | undefined> {
    const diffIds = image.config.rootfs.diff_ids;
    const layers = image.manifest.layers;
    if (diffIds.length !== layers.length) {
      throw new Error(
        `image ${image.pinnedRef}: config lists ${diffIds.length} layers but the manifest has ${layers.length}`,
      );
    }
    const chain = chainIds(diffIds);
    // Each layer waits for its parent only to apply: its download starts while the layer before
    // is still being applied (a small base layer of many files takes as long as megabytes).
    const done: Promise<SnapshotId>[] = [];
    for (let i = 0; i < layers.length; i++) {
      const parent = i === 0 ? Promise.resolve(undefined) : done[i - 1]!;
      const turn = i < LAYERS_AHEAD ? Promise.resolve() : done[i - LAYERS_AHEAD]!.then(() => {});
      done.push(this.layer(provider, image, i, chain[i]!, { parent, turn }, onLayer, opts));
      // Awaited through the layers after it; a failure must not also count as unhandled here.
      done[i]!.catch(() => {});
    }
    return done[done.length - 1];
  }

  private layer(
    provider: ImageProvider,
    image: ResolvedImage,
    i: number,
    chainId: Digest,
    order: LayerOrder,
    onLayer: ((desc: Descriptor, done: boolean) => void) | undefined,
    opts: UnpackOptions,
  ): Promise<SnapshotId> {
    let p = this.inflight.get(chainId);
    if (!p) {
      p = this.unpackLayer(provider, image, i, chainId, order, onLayer, opts).finally(() =>
        this.inflight.delete(chainId),
      );
      this.inflight.set(chainId, p);
    }
    return p;
  }

  private async unpackLayer(
    provider: ImageProvider,
    image: ResolvedImage,
    i: number,
    chainId: Digest,
    order: LayerOrder,
    onLayer: ((desc: Descriptor, done: boolean) => void) | undefined,
    opts: UnpackOptions,
  ): Promise<SnapshotId> {
    const { snapshotter, store, chains } = this.deps;
    const existing = await chains.get(chainId);
    if (existing && (await snapshotter.stat(existing))?.kind === "committed") return existing;
    await order.turn;
    const desc = image.manifest.layers[i]!;
    const diffId = image.config.rootfs.diff_ids[i]!;
    onLayer?.(desc, false);
    if (opts.lazy) {
      await provider.fetchBlob(image.pinnedRef, desc, store);
      const what = `image ${image.pinnedRef}: layer ${desc.digest}`;
      const made = Date.parse(desc.annotations?.[LAYER_CREATED_ANNOTATION] ?? "");
      const info = await snapshotter.applyLayerLazily(
        await order.parent,
        () => verifiedLayerTar(store.read(desc.digest), diffId, what, desc.size),
        Number.isNaN(made) ? {} : { createdAt: made },
      );
      return this.record(info.id, chainId, desc, diffId, onLayer);
    }
    let info: SnapshotInfo | undefined;
    let actual: Digest | undefined;
    const apply = async (blob: Readable) => {
      let parent: SnapshotId | undefined;
      try {
        parent = await order.parent;
      } catch (err) {
        blob.destroy();
        throw err;
      }
      const { stream, diffDigest } = decompressedLayer(blob, desc.size);
      info = await snapshotter.applyLayer(parent, stream);
      actual = await diffDigest;
    };
    try {
      if (provider.fetchBlobStreaming) {
        // Unpacked while it downloads; kept only once the whole blob has matched its digest.
        await provider.fetchBlobStreaming(image.pinnedRef, desc, store, apply);
      } else {
        await provider.fetchBlob(image.pinnedRef, desc, store);
        await apply(store.read(desc.digest));
      }
    } catch (err) {
      if (info) await snapshotter.remove(info.id).catch(() => {});
      throw err;
    }
    if (!info || actual !== diffId) {
      if (info) await snapshotter.remove(info.id);
      throw new Error(
        `image ${image.pinnedRef}: layer ${desc.digest} unpacks to ${actual}, but the config says ${diffId}`,
      );
    }
    return this.record(info.id, chainId, desc, diffId, onLayer);
  }

  /** Remembers a layer's snapshot: its blob, for exports, and its chain, for the next unpack. */
  private async record(
    id: SnapshotId,
    chainId: Digest,
    desc: Descriptor,
    diffId: Digest,
    onLayer: ((desc: Descriptor, done: boolean) => void) | undefined,
  ): Promise<SnapshotId> {
    await this.deps.layerRecords.put(id, {
      diffId,
      blob: { mediaType: desc.mediaType, digest: desc.digest, size: desc.size },
      empty: false,
    });
    await this.deps.chains.put(chainId, id);
    onLayer?.(desc, true);
    return id;
  }
}
