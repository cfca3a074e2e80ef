// The engine: one host's stores, snapshotter, executor and solver, turning build requests into
// outputs. The daemon (kilnd) serves it; the embedded builder runs it in-process.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { type CacheState, openCacheState } from "../cache/cache-state.js";
import type { GcRule, GcSpaceConfig } from "../cache/gc-policy.js";
import type { UsageRecord } from "../cache/usage-filter.js";
import type { BuildRequest } from "../client/build-request.js";
import { type ExportDeps, exportOutputs } from "../exporter/export.js";
import type { PlatformResult } from "../exporter/image-writer.js";
import type { FileHashCache } from "../fs/checksum.js";
import { formatPlatform, hostPlatform, type Platform } from "../oci/platform.js";
import type { BuildSession } from "../session/types.js";
import { chooseSnapshotter, type SnapshotterPreference } from "../snapshot/choose.js";
import type { Snapshotter } from "../snapshot/types.js";
import type { ProgressSink } from "../solver/progress.js";
import { Solver } from "../solver/solver.js";
import type { OpWorker } from "../solver/types.js";
import { HttpSourceCache } from "../source/http-source-cache.js";
import { ImageUnpacker } from "../source/image-unpack.js";
import { KILN_COMMIT, KILN_VERSION } from "../version.js";
import { CacheMountStore } from "../worker/cache-mounts.js";
import { executeFileAction } from "../worker/fileop/execute.js";
import { RuncExecutor } from "../worker/oci/runc-executor.js";
import { HostOpWorker } from "../worker/op-worker.js";
import { BuildCacheIo, imageCompression } from "./cache-io.js";
import { solvedFileReader } from "./context-git.js";
import { runDockerfileFrontend } from "./dockerfile-build.js";
import { checkEntitlements, requiredEntitlements } from "./entitlements.js";
import { ImageSources } from "./image-sources.js";
import { RecordedSnapshotter } from "./recorded-snapshotter.js";
import { IndexedResultCache } from "./result-cache.js";
import { type ChecksumMemo, LocalCopyLocks, SessionLocalSources } from "./session-locals.js";
import { describeStepFailure, LogTails } from "./step-error.js";
import type { BuildEngine, BuildOutcome, EngineInfo, PruneOptions } from "./types.js";

export interface EngineOptions {
  /** Where everything the engine keeps lives (content, snapshots, metadata, local context copies). */
  readonly stateDir: string;
  readonly snapshotter?: SnapshotterPreference;
  /** The OCI runtime binary (runc or crun). */
  readonly runtime?: string;
  /** Registries reached over plain HTTP (besides loopback ones). */
  readonly insecureRegistries?: readonly string[];
  readonly parallelism?: number;
  /** Entitlements builds may ask for with --allow (`network.host`, `security.insecure`). */
  readonly allowedEntitlements?: readonly string[];
  /** Run garbage collection every so often (a long-running daemon). */
  readonly gcIntervalMs?: number;
  /** The collector's rules; BuildKit's default policy (within `gcSpace`) without them. */
  readonly gcPolicy?: readonly GcRule[];
  readonly gcSpace?: GcSpaceConfig;
  /** Registry host → mirrors tried first for pulls (`docker.io` → [`mirror.example:5000`]). */
  readonly registryMirrors?: Readonly<Record<string, readonly string[]>>;
}

export class Engine implements BuildEngine {
  private readonly locks = new LocalCopyLocks();
  private readonly hashCaches = new Map<string, FileHashCache>();
  private readonly checksumMemos = new Map<string, ChecksumMemo>();
  private readonly cacheMounts: CacheMountStore;
  private readonly httpCache: HttpSourceCache;
  private readonly unpacker: ImageUnpacker;
  private readonly solver: Solver;
  private stopGc?: () => Promise<void>;

  private constructor(
    private readonly opts: EngineOptions,
    private readonly state: CacheState,
    private readonly snapshotter: Snapshotter,
    private readonly executor: RuncExecutor,
    private readonly images: ImageSources,
  ) {
    this.cacheMounts = new CacheMountStore(join(opts.stateDir, "cachemounts"));
    this.httpCache = new HttpSourceCache(join(opts.stateDir, "http"));
    this.unpacker = new ImageUnpacker({
      snapshotter,
      store: state.content,
      chains: state.db.chainSnapshots,
      layerRecords: state.db.snapshotLayers,
    });
    this.solver = new Solver({ cache: new IndexedResultCache(state.index), parallelism: opts.parallelism });
  }

  static async open(opts: EngineOptions): Promise<Engine> {
    const stateDir = opts.stateDir;
    await Promise.all(
      ["cachemounts", "local", "tmp", "http", "git"].map((d) =>
        mkdir(join(stateDir, d), { recursive: true }),
      ),
    );
    // Containers of a crashed engine go first: their root filesystems are mounted from snapshots
    // that recovery below may remove.
    const executor = new RuncExecutor({ stateDir: join(stateDir, "exec"), runtime: opts.runtime });
    await executor.cleanupStale();
    const inner = await chooseSnapshotter(stateDir, opts.snapshotter ?? "auto");
    let snapshotterRef: Snapshotter | undefined;
    const state = await openCacheState({
      stateDir,
      snapshotExists: async (id) => (await inner.stat(id))?.kind === "committed",
      removeSnapshot: async (id) => {
        await (snapshotterRef ?? inner).remove(id).catch(() => {});
      },
      gc: {
        ...(opts.gcPolicy ? { policy: opts.gcPolicy } : {}),
        ...(opts.gcSpace ? { space: opts.gcSpace } : {}),
      },
    });
    const snapshotter = new RecordedSnapshotter(inner, state.db);
    snapshotterRef = snapshotter;
    // Active snapshots belong to builds that no longer exist after a restart.
    await inner.cleanup((id) => state.db.snapshots.get(id)?.kind === "committed");
    const images = new ImageSources({
      insecureRegistries: opts.insecureRegistries ?? [],
      mirrors: opts.registryMirrors ?? {},
    });
    const engine = new Engine(opts, state, snapshotter, executor, images);
    if (opts.gcIntervalMs) {
      engine.stopGc = state.gc.startBackgroundGc(opts.gcIntervalMs, (err) =>
        process.stderr.write(
          `kiln: background garbage collection failed: ${err instanceof Error ? err.message : String(err)}\n`,
        ),
      );
    }
    return engine;
  }

  async build(
    req: BuildRequest,
    session: BuildSession,
    opts: { onProgress?: ProgressSink; signal?: AbortSignal },
  ): Promise<BuildOutcome> {
    const signal = opts.signal ?? new AbortController().signal;
    const onProgress = opts.onProgress ?? (() => {});
    const locals = new SessionLocalSources(
      session,
      join(this.opts.stateDir, "local"),
      this.locks,
      this.hashCaches,
      this.checksumMemos,
    );
    // Registry pulls and pushes of this build use the client's credentials first (its session).
    const sources = this.images.forBuild(session);
    const lease = this.state.leases.acquire({});
    const steps = new StepsInFlight();
    // The client's cancel stops every platform's solve; so does one platform's failure.
    const solveAbort = new AbortController();
    const stopSolves = () => solveAbort.abort(signal.reason);
    if (signal.aborted) stopSolves();
    else signal.addEventListener("abort", stopSolves, { once: true });
    try {
      const hostWorker = new HostOpWorker({
        snapshotter: this.snapshotter,
        executor: this.executor,
        unpacker: this.unpacker,
        layerRecords: this.state.db.snapshotLayers,
        imageProvider: (identifier) => sources.providerFor(identifier),
        locals,
        runFileAction: (action, roots) => executeFileAction(action, roots),
        cacheMounts: this.cacheMounts,
        scratchDir: join(this.opts.stateDir, "tmp"),
        remote: { http: this.httpCache, gitCacheDir: join(this.opts.stateDir, "git") },
        session,
        execDefaults: { shmSize: req.shmSize, cgroupParent: req.cgroupParent },
      });
      const worker = steps.track(hostWorker);
      const frontend = await runDockerfileFrontend(req, {
        resolveImage: (ref, platform) => sources.resolveConfig(ref, platform, req.pull),
        buildPlatform: hostPlatform(),
        readSolved: solvedFileReader(this.solver, this.snapshotter, {
          worker,
          noCache: req.noCache,
          signal: solveAbort.signal,
          onProgress,
        }),
      });
      if (frontend.kind === "report") return frontend.outcome;
      for (const b of frontend.builds)
        checkEntitlements(requiredEntitlements(b.definition), req.allow, this.opts.allowedEntitlements ?? []);
      const logs = new LogTails();
      const progress: ProgressSink = (e) => {
        logs.record(e);
        onProgress(e);
      };
      const cacheIo = await BuildCacheIo.open(
        {
          snapshotter: this.snapshotter,
          store: this.state.content,
          layerRecords: this.state.db.snapshotLayers,
          unpacker: this.unpacker,
          chains: this.state.db.chainSnapshots,
          local: this.solver.cache,
          registry: sources.registry,
          cacheDirs: session.cacheDirs,
        },
        req,
        progress,
      );
      const dockerfile = frontend.dockerfile;
      const results: PlatformResult[] = await Promise.all(
        frontend.builds.map(async (b) => {
          const out = await this.solver
            .solve(b.definition, {
              worker,
              noCache: req.noCache,
              signal: solveAbort.signal,
              onProgress: progress,
              ...cacheIo.solveOptions,
            })
            .catch((err) => {
              if (!solveAbort.signal.aborted) solveAbort.abort(err);
              throw describeStepFailure(err, [b.definition], dockerfile, logs);
            });
          if (out.kind === "directory")
            throw new Error("the build result is a local context; build a stage instead");
          return {
            platform: b.platform,
            snapshot: out.kind === "snapshot" ? out.id : undefined,
            config: b.imageConfig,
          };
        }),
      );
      const exportDeps: ExportDeps = {
        snapshotter: this.snapshotter,
        store: this.state.content,
        layerRecords: this.state.db.snapshotLayers,
        push: (name, root, store, sig) => sources.push(name, root, store, sig),
        startLayerUpload: (repository) => sources.startLayerUpload(repository),
      };
      const outputs = req.outputs.length ? req.outputs : [];
      const images = await cacheIo.withInlineCache(results, imageCompression(req), frontend.epoch);
      const { metadata, imageId } = await exportOutputs(exportDeps, images, outputs, {
        session,
        signal,
        epoch: frontend.epoch,
      });
      await cacheIo.export(results, frontend.epoch);
      const warnings = [...frontend.warnings, ...cacheIo.warnings];
      if (outputs.length === 0) {
        warnings.push(
          "No output specified. Build result will only remain in the build cache. To push result image into registry use --push or to load image into docker use --load",
        );
      }
      return { warnings, metadata, imageId };
    } finally {
      signal.removeEventListener("abort", stopSolves);
      // A cancelled or failed build ends once the steps it stopped have removed their containers,
      // mounts and snapshots, so that the next build (or a check) finds nothing of them.
      await steps.settleStopped(STOPPED_STEPS_GRACE_MS);
      await locals.release();
      await lease.release();
    }
  }

  async info(): Promise<EngineInfo> {
    const { native, emulated } = await this.executor.supportedPlatforms();
    return {
      version: KILN_VERSION,
      commit: KILN_COMMIT,
      nativePlatforms: native,
      emulatedPlatforms: emulated,
      snapshotter: this.snapshotter.name,
      gcPolicy: (await this.state.gc.effectivePolicy()).map(({ rule, keepBytes }) => ({
        ...(rule.all ? { all: true } : {}),
        ...(rule.filters ? { filters: rule.filters } : {}),
        ...(rule.keepDurationMs ? { keepDurationMs: rule.keepDurationMs } : {}),
        keepBytes,
      })),
    };
  }

  async diskUsage(filters: readonly string[] = []): Promise<UsageRecord[]> {
    return this.state.gc.diskUsage({ filters: [...filters] });
  }

  async prune(opts: PruneOptions): Promise<{ reclaimedBytes: number; removed: number }> {
    const r = await this.state.gc.prune({
      all: opts.all,
      filters: opts.filters ? [...opts.filters] : undefined,
      keepStorage: opts.keepStorage,
    });
    return { reclaimedBytes: r.reclaimedBytes, removed: r.removed.length };
  }

  async close(): Promise<void> {
    await this.stopGc?.();
    this.images.registry.close();
    this.state.close();
  }
}

/** How long a build that ends waits for its stopped steps to clean up (the runtime's kill takes up to 5 s). */
const STOPPED_STEPS_GRACE_MS = 10_000;

/**
 * A build's steps in flight. The solver stops waiting for a step as soon as the step's signal
 * fires, while the step is still killing its container and removing its mounts and snapshots.
 */
class StepsInFlight {
  private readonly running = new Map<Promise<void>, AbortSignal>();

  track(worker: OpWorker): OpWorker {
    return {
      contentKey: (v, ctx) => worker.contentKey(v, ctx),
      selectionKey: (v, i, input, ctx) => worker.selectionKey(v, i, input, ctx),
      cacheable: (v) => worker.cacheable(v),
      resultExists: (r) => worker.resultExists(r),
      execute: (v, inputs, ctx) => {
        const result = worker.execute(v, inputs, ctx);
        const done = result.then(
          () => {},
          () => {},
        );
        this.running.set(done, ctx.signal);
        void done.then(() => this.running.delete(done));
        return result;
      },
    };
  }

  /**
   * Waits, up to `timeoutMs`, for the steps whose signal fired. Steps that another build still
   * waits for (the solver shares identical steps) were not stopped and go on.
   */
  async settleStopped(timeoutMs: number): Promise<void> {
    const stopped = [...this.running].filter(([, signal]) => signal.aborted).map(([done]) => done);
    if (stopped.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(stopped),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }
}

export function openEngine(opts: EngineOptions): Promise<Engine> {
  return Engine.open(opts);
}

export function describePlatforms(ps: readonly Platform[]): string {
  return ps.map(formatPlatform).join(", ");
}
