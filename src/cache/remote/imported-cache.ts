// The imported-cache view the solver consults after the engine's own cache: records loaded from
// `--cache-from` sources, keyed by cache key. A hit is materialized only when the solver asks for
// it (it asks only for results it needs): the record's layers are pulled and given snapshots by
// chain ID, sharing snapshots with images already unpacked, and the result is recorded in the
// engine's cache. The layers are applied only when a snapshot is first read (a later step runs on
// it, an output needs its files): an export to an image reuses the blobs without unpacking.
import type { ContentStore } from "../../content/types.js";
import type { Digest } from "../../oci/digest.js";
import { type Descriptor, LAYER_CREATED_ANNOTATION } from "../../oci/spec.js";
import type { SnapshotId } from "../../snapshot/types.js";
import type { OutputResult, ResultCache } from "../../solver/types.js";
import type { ImageProvider, ResolvedImage } from "../../source/image-provider.js";
import { type ChainSnapshotIndex, chainIds, type ImageUnpacker } from "../../source/image-unpack.js";
import type { ImportedLayer, ImportedRecord } from "./cache-config.js";
import type { CacheSource } from "./cache-source.js";

export interface SourcedRecord {
  readonly record: ImportedRecord;
  readonly source: CacheSource;
}

export interface ImportedResultCacheDeps {
  readonly unpacker: ImageUnpacker;
  /** The unpacker's chain index: layers already unpacked need no fetch. */
  readonly chains: ChainSnapshotIndex;
  readonly store: ContentStore;
  /** The engine's own cache: materialized results are recorded there, so later builds hit locally. */
  readonly local: ResultCache;
  readonly warn: (message: string) => void;
}

export class ImportedResultCache implements ResultCache {
  private readonly records = new Map<Digest, SourcedRecord>();
  private readonly materializing = new Map<Digest, Promise<OutputResult[] | undefined>>();

  constructor(private readonly deps: ImportedResultCacheDeps) {}

  /** Adds a source's records; an earlier source wins for a key both have (the order of `--cache-from`). */
  add(source: CacheSource, records: ReadonlyMap<Digest, ImportedRecord>): void {
    for (const [key, record] of records)
      if (!this.records.has(key)) this.records.set(key, { record, source });
  }

  get size(): number {
    return this.records.size;
  }

  has(key: Digest): boolean {
    return this.records.has(key);
  }

  /** The record the solver would use for `key`, with its source: an export can carry it on unmaterialized. */
  recordFor(key: Digest): SourcedRecord | undefined {
    return this.records.get(key);
  }

  async get(key: Digest): Promise<readonly OutputResult[] | undefined> {
    const found = this.records.get(key);
    if (!found) return undefined;
    let p = this.materializing.get(key);
    if (!p) {
      p = this.materialize(key, found);
      this.materializing.set(key, p);
    }
    return p;
  }

  /** Imported records are read-only; results are recorded in the engine's own cache. */
  async put(): Promise<void> {}

  private async materialize(
    key: Digest,
    { record, source }: SourcedRecord,
  ): Promise<OutputResult[] | undefined> {
    try {
      const outputs: OutputResult[] = [];
      for (const chain of record.outputs) {
        const top = await this.applyChain(source, chain);
        outputs.push(top ? { kind: "snapshot", id: top } : { kind: "scratch" });
      }
      await this.deps.local.put(key, outputs, `imported from ${source.name}`);
      return outputs;
    } catch (err) {
      // The step runs instead: a cache that lost a blob slows the build, it does not fail it.
      this.records.delete(key);
      this.deps.warn(
        `cache ${source.name}: cannot use the record for ${key}, the step runs instead: ${(err as Error).message}`,
      );
      return undefined;
    }
  }

  private async applyChain(
    source: CacheSource,
    chain: readonly ImportedLayer[],
  ): Promise<SnapshotId | undefined> {
    await this.prefetch(source, chain);
    const provider: ImageProvider = {
      resolve: () => Promise.reject(new Error("a cache source resolves no image references")),
      fetchBlob: (_ref: string, desc: Descriptor, store: ContentStore) => source.fetchBlob(desc, store),
    };
    // Lazily: a result that no later step and no output reads is never unpacked.
    return this.deps.unpacker.unpack(provider, layerChainImage(source.name, chain), undefined, {
      lazy: true,
    });
  }

  /**
   * Fetches the blobs of the layers not yet unpacked, several at once: the unpacker applies layers
   * one after another and would otherwise wait for each download in turn.
   */
  private async prefetch(source: CacheSource, chain: readonly ImportedLayer[]): Promise<void> {
    const ids = chainIds(chain.map((l) => l.diffId));
    let from = ids.length;
    while (from > 0 && !(await this.deps.chains.get(ids[from - 1]!))) from--;
    const queue = chain.slice(from).map((l) => l.blob);
    const worker = async () => {
      for (let d = queue.shift(); d; d = queue.shift()) await source.fetchBlob(d, this.deps.store);
    };
    await Promise.all(Array.from({ length: Math.min(PREFETCH_CONCURRENCY, queue.length) }, worker));
  }
}

/** How many layer blobs are fetched at once ahead of unpacking. */
const PREFETCH_CONCURRENCY = 8;

/** A layer chain in the shape the image unpacker reads: the manifest's layers and the config's diff IDs. */
function layerChainImage(sourceName: string, chain: readonly ImportedLayer[]): ResolvedImage {
  return {
    pinnedRef: `cache ${sourceName}`,
    manifestDigest: chain[chain.length - 1]?.blob.digest ?? ("" as Digest),
    manifest: {
      schemaVersion: 2,
      config: { mediaType: "", digest: "" as Digest, size: 0 },
      // The exporting builder's layer times go with the layers, so the importer's snapshots keep them.
      layers: chain.map((l) =>
        l.createdAt
          ? { ...l.blob, annotations: { ...l.blob.annotations, [LAYER_CREATED_ANNOTATION]: l.createdAt } }
          : l.blob,
      ),
    },
    config: {
      architecture: "",
      os: "",
      config: {},
      rootfs: { type: "layers", diff_ids: chain.map((l) => l.diffId) },
    },
  };
}
