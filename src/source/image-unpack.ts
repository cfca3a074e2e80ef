// Unpacks an image's layers into snapshots once per layer chain, shared by every build on the
// engine, and remembers each snapshot's original blob so exports reuse it instead of re-compressing.
// A registry's layer is unpacked while it downloads.

import type { Readable } from "node:stream";
import type { ContentStore } from "../content/types.js";
import type { LayerRecordStore } from "../exporter/layer-blobs.js";
import { type Digest, sha256Digest } from "../oci/digest.js";
import type { Descriptor } from "../oci/spec.js";
import type { SnapshotId, SnapshotInfo, Snapshotter } from "../snapshot/types.js";
import type { ImageProvider, ResolvedImage } from "./image-provider.js";
import { decompressedLayer } from "./layer-stream.js";

/** chain id (the OCI image-spec's ChainID of the layers so far) → snapshot. */
export interface ChainSnapshotIndex {
  get(chainId: Digest): Promise<SnapshotId | undefined>;
  put(chainId: Digest, snapshot: SnapshotId): Promise<void>;
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

  /** The snapshot holding the image's root filesystem (undefined for an image with no layers). */
  async unpack(
    provider: ImageProvider,
    image: ResolvedImage,
    onLayer?: (desc: Descriptor, done: boolean) => void,
  ): Promise<SnapshotId | undefined> {
    const diffIds = image.config.rootfs.diff_ids;
    const layers = image.manifest.layers;
    if (diffIds.length !== layers.length) {
      throw new Error(
        `image ${image.pinnedRef}: config lists ${diffIds.length} layers but the manifest has ${layers.length}`,
      );
    }
    const chain = chainIds(diffIds);
    let parent: SnapshotId | undefined;
    for (let i = 0; i < layers.length; i++) {
      parent = await this.layer(provider, image, i, chain[i]!, parent, onLayer);
    }
    return parent;
  }

  private layer(
    provider: ImageProvider,
    image: ResolvedImage,
    i: number,
    chainId: Digest,
    parent: SnapshotId | undefined,
    onLayer?: (desc: Descriptor, done: boolean) => void,
  ): Promise<SnapshotId> {
    let p = this.inflight.get(chainId);
    if (!p) {
      p = this.unpackLayer(provider, image, i, chainId, parent, onLayer).finally(() =>
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
    parent: SnapshotId | undefined,
    onLayer?: (desc: Descriptor, done: boolean) => void,
  ): Promise<SnapshotId> {
    const { snapshotter, store, chains, layerRecords } = this.deps;
    const existing = await chains.get(chainId);
    if (existing && (await snapshotter.stat(existing))?.kind === "committed") return existing;
    const desc = image.manifest.layers[i]!;
    const diffId = image.config.rootfs.diff_ids[i]!;
    onLayer?.(desc, false);
    let info: SnapshotInfo | undefined;
    let actual: Digest | undefined;
    const apply = async (blob: Readable) => {
      const { stream, diffDigest } = decompressedLayer(blob);
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
    await layerRecords.put(info.id, {
      diffId,
      blob: { mediaType: desc.mediaType, digest: desc.digest, size: desc.size },
      empty: false,
    });
    await chains.put(chainId, info.id);
    onLayer?.(desc, true);
    return info.id;
  }
}
