// A build's cache import and export (`--cache-from`, `--cache-to`): loads the imported records before
// the solve, records what the solve computed, embeds an inline cache in exported images' configs, and
// pushes or writes the cache after the outputs. Import problems are warnings; export problems fail
// the build unless the export says ignore-error=true.
import { CacheConfigError, encodeCacheConfig, INLINE_CACHE_KEY } from "../cache/remote/cache-config.js";
import { writeCacheManifest } from "../cache/remote/cache-manifest.js";
import { CacheNotFoundError, type CacheSource } from "../cache/remote/cache-source.js";
import {
  type CacheExportSpec,
  inlineCacheWanted,
  parseCacheExports,
  parseCacheImports,
} from "../cache/remote/cache-spec.js";
import { type ExportRecordDeps, exportRecords } from "../cache/remote/export-records.js";
import { ImportedResultCache } from "../cache/remote/imported-cache.js";
import { type LocalCacheDir, LocalCacheSource, writeCacheToLocal } from "../cache/remote/local-cache.js";
import { pushCacheToRegistry, RegistryCacheSource } from "../cache/remote/registry-cache.js";
import { SolveRecorder } from "../cache/remote/solve-recorder.js";
import type { BuildRequest } from "../client/build-request.js";
import type { ContentStore } from "../content/types.js";
import type { PlatformResult } from "../exporter/image-writer.js";
import type { Compression, LayerRecordStore } from "../exporter/layer-blobs.js";
import { sha256Digest } from "../oci/digest.js";
import type { ImageConfig } from "../oci/spec.js";
import type { RegistryClient } from "../registry/client.js";
import { RegistryNotFoundError } from "../registry/errors.js";
import type { CacheDirAccess } from "../session/cache-dir.js";
import type { Snapshotter } from "../snapshot/types.js";
import type { ProgressSink } from "../solver/progress.js";
import type { SolveOptions } from "../solver/solver.js";
import type { ResultCache } from "../solver/types.js";
import type { ChainSnapshotIndex, ImageUnpacker } from "../source/image-unpack.js";

export interface BuildCacheDeps {
  readonly snapshotter: Snapshotter;
  readonly store: ContentStore;
  readonly layerRecords: LayerRecordStore;
  readonly unpacker: ImageUnpacker;
  /** Layer chain → snapshot, as the unpacker records it. */
  readonly chains: ChainSnapshotIndex;
  /** The engine's own result cache. */
  readonly local: ResultCache;
  readonly registry: RegistryClient;
  /** The build session's client-side cache directories; undefined when the client cannot serve them. */
  readonly cacheDirs: CacheDirAccess | undefined;
}

export class BuildCacheIo {
  /** Warnings for the build's outcome. */
  readonly warnings: string[] = [];
  private readonly recorder = new SolveRecorder();
  private readonly imported: ImportedResultCache;
  private readonly exports: readonly CacheExportSpec[];
  private readonly inline: boolean;

  private constructor(
    private readonly deps: BuildCacheDeps,
    req: BuildRequest,
    private readonly onProgress: ProgressSink,
  ) {
    // Checked before anything runs: a misspelt cache flag is a usage error, not a late surprise.
    this.exports = parseCacheExports(req.cacheTo);
    this.inline = inlineCacheWanted(req.cacheTo, req.buildArgs);
    this.imported = new ImportedResultCache({
      unpacker: deps.unpacker,
      chains: deps.chains,
      store: deps.store,
      local: deps.local,
      warn: (m) => this.warn(m),
    });
  }

  /** Parses the request's cache flags and loads every `--cache-from` source (in parallel). */
  static async open(
    deps: BuildCacheDeps,
    req: BuildRequest,
    onProgress: ProgressSink,
  ): Promise<BuildCacheIo> {
    const io = new BuildCacheIo(deps, req, onProgress);
    const sources: CacheSource[] = parseCacheImports(req.cacheFrom).map((s) =>
      s.type === "registry"
        ? new RegistryCacheSource(deps.registry, s.ref)
        : new LocalCacheSource(clientDir(deps, s.src), s.tag, s.digest),
    );
    const loaded = await Promise.all(sources.map((s) => io.load(s)));
    // Added in flag order so the first source that has a key wins.
    sources.forEach((s, i) => {
      const records = loaded[i];
      if (records) io.imported.add(s, records);
    });
    return io;
  }

  private warn(message: string): void {
    // Reported once, with the build's other warnings (the CLI prints those after the progress).
    this.warnings.push(message);
  }

  private async step<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const vertex = sha256Digest(`cache:${name}:${Date.now()}:${Math.random()}`);
    const started = Date.now();
    this.onProgress({ type: "vertex", vertex, name, inputs: [], started });
    try {
      const r = await fn();
      this.onProgress({ type: "vertex", vertex, name, inputs: [], started, completed: Date.now() });
      return r;
    } catch (err) {
      const error = (err as Error).message;
      this.onProgress({ type: "vertex", vertex, name, inputs: [], started, completed: Date.now(), error });
      throw err;
    }
  }

  private async load(source: CacheSource) {
    try {
      const read = await this.step(`importing cache manifest from ${source.name}`, () => source.load());
      if (!read.found)
        this.warn(
          `cache ${source.name}: no build cache there (neither a cache manifest nor an inline cache)`,
        );
      return read.records;
    } catch (err) {
      const why =
        err instanceof RegistryNotFoundError || err instanceof CacheNotFoundError
          ? `not found (${err.message})`
          : err instanceof CacheConfigError
            ? `unreadable: ${err.message}`
            : (err as Error).message;
      this.warn(`cache ${source.name}: ${why}; building without it`);
      return undefined;
    }
  }

  /** The exporter's view: imported records stand in for the hits' chains that were never materialized. */
  private get recordDeps(): ExportRecordDeps {
    return { ...this.deps, imported: this.imported };
  }

  /** What the solver needs to consult the imported cache and to record keys and results for export. */
  get solveOptions(): Pick<SolveOptions, "importedCache" | "onCacheKey" | "onResult"> {
    return {
      importedCache: this.imported.size > 0 ? this.imported : undefined,
      onCacheKey: this.recorder.onCacheKey,
      onResult: this.recorder.onResult,
    };
  }

  /**
   * The results with the inline cache (min mode, the image's own layers) in each platform's image
   * config, when asked for. `compression` must be the image exporter's, so the layers are the image's.
   */
  async withInlineCache(
    results: readonly PlatformResult[],
    compression: Compression,
    /** The build's SOURCE_DATE_EPOCH: layer times are clamped to it, as the image's are. */
    epoch?: number,
  ): Promise<PlatformResult[]> {
    if (!this.inline) return [...results];
    return Promise.all(
      results.map(async (r) => {
        const records = await exportRecords(this.recordDeps, this.recorder, {
          mode: "min",
          roots: [r.snapshot],
          compression,
          forceCompression: false,
          epoch,
        });
        const { config } = encodeCacheConfig(records);
        const value = Buffer.from(JSON.stringify(config)).toString("base64");
        return { ...r, config: { ...r.config, [INLINE_CACHE_KEY]: value } as ImageConfig };
      }),
    );
  }

  /** Runs every registry and local cache export. */
  async export(results: readonly PlatformResult[], epoch?: number): Promise<void> {
    for (const spec of this.exports) {
      try {
        await this.step(`exporting cache to ${spec.name}`, () => this.exportOne(spec, results, epoch));
      } catch (err) {
        if (!spec.ignoreError)
          throw new Error(`cache export to ${spec.name} failed: ${(err as Error).message}`);
        this.warn(`cache export to ${spec.name} failed (ignored): ${(err as Error).message}`);
      }
    }
  }

  private async exportOne(
    spec: CacheExportSpec,
    results: readonly PlatformResult[],
    epoch: number | undefined,
  ): Promise<void> {
    const records = await exportRecords(this.recordDeps, this.recorder, {
      mode: spec.mode,
      roots: results.map((r) => r.snapshot),
      compression: spec.compression,
      compressionLevel: spec.compressionLevel,
      forceCompression: spec.forceCompression,
      epoch,
    });
    const { config, layers } = encodeCacheConfig(records, new Date().toISOString());
    const written = await writeCacheManifest(this.deps.store, config, layers, spec);
    if (spec.target.type === "registry")
      await pushCacheToRegistry(this.deps.registry, spec.target.ref, written, this.deps.store);
    else
      await writeCacheToLocal(
        clientDir(this.deps, spec.target.dest),
        spec.target.tag,
        written,
        this.deps.store,
      );
  }
}

/**
 * A local cache directory: on the client's disk, which only the session reaches. A client that
 * cannot serve it fails each use, so an import warns and an export fails as for any other cause.
 */
function clientDir(deps: BuildCacheDeps, dir: string): LocalCacheDir {
  if (deps.cacheDirs) return { files: deps.cacheDirs, dir };
  const unavailable = () =>
    Promise.reject(
      new Error(
        `the client cannot serve its local cache directory ${dir} to the engine; update Kiln on the client`,
      ),
    );
  return {
    files: {
      read: unavailable,
      exists: unavailable,
      openWrite: unavailable,
      list: unavailable,
      remove: unavailable,
    },
    dir,
  };
}

/** The compression the image outputs use (their layers are what an inline cache refers to). */
export function imageCompression(req: BuildRequest): Compression {
  for (const o of req.outputs)
    if (o.type !== "local" && o.type !== "tar" && o.attrs.compression === "uncompressed")
      return "uncompressed";
  return "gzip";
}
