// The solver: runs the part of an LLB definition that the requested result needs, in parallel
// where vertices are independent, reusing any result whose cache key is known, and executing an
// identical vertex once when several builds ask for it at the same time.
import { setMaxListeners } from "node:events";
import { canonicalJson, type Definition } from "../llb/definition.js";
import type { Vertex } from "../llb/ops.js";
import { type Digest, sha256Digest } from "../oci/digest.js";
import { type ProgressEvent, ProgressFanout, type ProgressSink } from "./progress.js";
import { Semaphore } from "./semaphore.js";
import type { OpWorker, OutputResult, ResultCache, VertexContext } from "./types.js";

export interface SolveOptions {
  /** Executes this build's vertices: it knows the build's local contexts and session. */
  readonly worker: OpWorker;
  /** Execute every vertex even when its key is cached (`--no-cache`). */
  readonly noCache?: boolean;
  readonly signal?: AbortSignal;
  readonly onProgress?: ProgressSink;
  /** Consulted when the solver's own cache misses: results another builder exported (`--cache-from`). */
  readonly importedCache?: ResultCache;
  /** Told each cacheable vertex's key and the input keys it was computed from (for `--cache-to`). */
  readonly onCacheKey?: (vertex: Digest, key: Digest, inputKeys: readonly string[]) => void;
  /** Told the outputs of each keyed vertex this solve executed or found cached (for `--cache-to`). */
  readonly onResult?: (vertex: Digest, key: Digest, outputs: readonly OutputResult[]) => void;
}

/** A failed vertex: names the step, keeps the cause. */
export class VertexError extends Error {
  override name = "VertexError";
  constructor(
    readonly vertex: Digest,
    readonly vertexName: string,
    override readonly cause: unknown,
  ) {
    super(`${vertexName}: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

/** A vertex execution shared by every build that needs the same cache key at the same time. */
interface SharedJob {
  readonly result: Promise<OutputResult[]>;
  readonly progress: ProgressFanout;
  readonly abort: AbortController;
  waiters: number;
}

export interface SolverOptions {
  readonly cache: ResultCache;
  /** How many vertices may execute at once. */
  readonly parallelism?: number;
}

export class Solver {
  readonly cache: ResultCache;
  private readonly slots: Semaphore;
  private readonly inflight = new Map<Digest, SharedJob>();

  constructor(opts: SolverOptions) {
    this.cache = opts.cache;
    this.slots = new Semaphore(opts.parallelism ?? 16);
  }

  /** Solves the definition's root and returns its output (scratch for an empty definition). */
  async solve(def: Definition, opts: SolveOptions): Promise<OutputResult> {
    if (!def.root) return { kind: "scratch" };
    const run = new SolveRun(this, def, opts);
    try {
      const outputs = await run.result(def.root.vertex);
      const out = outputs[def.root.index];
      if (!out) throw new Error(`vertex ${def.root.vertex} has no output ${def.root.index}`);
      return out;
    } finally {
      run.abortAll();
    }
  }

  /** @internal */
  execShared(
    key: Digest,
    start: (signal: AbortSignal, emit: (e: ProgressEvent) => void) => Promise<OutputResult[]>,
    sink: ProgressSink,
    signal: AbortSignal,
  ): Promise<OutputResult[]> {
    let job = this.inflight.get(key);
    if (!job) {
      const abort = new AbortController();
      const progress = new ProgressFanout();
      const result = this.slots.run(() => start(abort.signal, (e) => progress.emit(e)));
      const created: SharedJob = { result, progress, abort, waiters: 0 };
      job = created;
      this.inflight.set(key, created);
      result.then(
        () => this.inflight.delete(key),
        () => this.inflight.delete(key),
      );
    }
    const shared = job;
    shared.waiters++;
    const unsubscribe = shared.progress.subscribe(sink);
    let rejectWaiter: ((e: Error) => void) | undefined;
    // One listener per waiter: it gives up this build's interest and fails its wait.
    const onAbort = () => {
      if (--shared.waiters === 0) shared.abort.abort(signal.reason);
      rejectWaiter?.(abortError(signal));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    return new Promise<OutputResult[]>((resolve, reject) => {
      rejectWaiter = reject;
      if (signal.aborted) return reject(abortError(signal));
      shared.result.then(resolve, reject);
    }).finally(() => {
      unsubscribe();
      signal.removeEventListener("abort", onAbort);
      if (!signal.aborted) shared.waiters--;
    });
  }
}

function abortError(signal: AbortSignal): Error {
  const e = new Error(signal.reason instanceof Error ? signal.reason.message : "build cancelled");
  e.name = "AbortError";
  return e;
}

/** One solve of one definition: memoises keys and results per vertex for this build. */
class SolveRun {
  private readonly keys = new Map<Digest, Promise<Digest>>();
  private readonly results = new Map<Digest, Promise<OutputResult[]>>();
  private readonly abort = new AbortController();
  private readonly emit: ProgressSink;

  constructor(
    private readonly solver: Solver,
    private readonly def: Definition,
    private readonly opts: SolveOptions,
  ) {
    const sink = opts.onProgress ?? (() => {});
    this.emit = sink;
    // Every running vertex listens for the build's cancellation: hundreds at once is expected.
    setMaxListeners(0, this.abort.signal);
    if (opts.signal) {
      if (opts.signal.aborted) this.abort.abort(opts.signal.reason);
      else opts.signal.addEventListener("abort", () => this.abort.abort(opts.signal?.reason), { once: true });
    }
  }

  abortAll(): void {
    if (!this.abort.signal.aborted) this.abort.abort(new Error("build finished"));
  }

  private vertex(d: Digest): Vertex {
    const v = this.def.vertices.get(d);
    if (!v) throw new Error(`LLB definition references missing vertex ${d}`);
    return v;
  }

  private name(d: Digest): string {
    return this.def.metadata.get(d)?.description ?? describeOp(this.vertex(d));
  }

  private context(d: Digest, emit: (e: ProgressEvent) => void, signal: AbortSignal): VertexContext {
    return {
      digest: d,
      name: this.name(d),
      signal,
      emit,
      log: (stream, data) => emit({ type: "log", vertex: d, stream, data, timestamp: Date.now() }),
    };
  }

  /** The cache key: the op (without input digests), platform, and each input's key or selection key. */
  key(d: Digest): Promise<Digest> {
    let p = this.keys.get(d);
    if (!p) {
      p = this.computeKey(d);
      this.keys.set(d, p);
    }
    return p;
  }

  private async computeKey(d: Digest): Promise<Digest> {
    const v = this.vertex(d);
    const { worker } = this.opts;
    const ctx = this.context(d, this.emit, this.abort.signal);
    const inputKeys = await Promise.all(
      v.inputs.map(async (inp, i) => {
        const sel = await worker.selectionKey(v, i, this.vertex(inp.vertex), ctx);
        if (sel !== undefined) return `sel:${sel}`;
        return `${await this.key(inp.vertex)}#${inp.index}`;
      }),
    );
    const content = await worker.contentKey(v, ctx);
    const { inputs: _inputs, ignoreCache: _ignore, ...opPart } = v;
    const key = sha256Digest(
      canonicalJson({
        op: withoutProxyEnv(opPart.op),
        platform: opPart.platform,
        inputs: inputKeys,
        content,
      }),
    );
    this.opts.onCacheKey?.(d, key, inputKeys);
    return key;
  }

  /** A usable cached result for `key`: the solver's own cache first, then the imported one. */
  private async cached(key: Digest): Promise<readonly OutputResult[] | undefined> {
    const { worker } = this.opts;
    for (const cache of [this.solver.cache, this.opts.importedCache]) {
      const hit = await cache?.get(key);
      if (hit && (await worker.resultExists(hit))) return hit;
    }
    return undefined;
  }

  result(d: Digest): Promise<OutputResult[]> {
    let p = this.results.get(d);
    if (!p) {
      p = this.computeResult(d);
      this.results.set(d, p);
      // A failure anywhere fails the build: stop the other vertices now rather than at the end.
      p.catch((err) => {
        if (!this.abort.signal.aborted) this.abort.abort(err);
      });
    }
    return p;
  }

  private async computeResult(d: Digest): Promise<OutputResult[]> {
    const v = this.vertex(d);
    const { worker } = this.opts;
    const { cache } = this.solver;
    const name = this.name(d);
    const inputs = v.inputs.map((i) => i.vertex);
    const progressGroup = this.def.metadata.get(d)?.progressGroup;
    const cacheable = worker.cacheable(v);
    // Uncacheable vertices (local contexts) need no key of their own: their users key on what they read.
    const key = cacheable ? await this.key(d) : undefined;
    if (key && !this.opts.noCache && !v.ignoreCache) {
      const hit = await this.cached(key);
      if (hit) {
        this.opts.onResult?.(d, key, hit);
        const now = Date.now();
        this.emit({
          type: "vertex",
          vertex: d,
          name,
          inputs,
          started: now,
          completed: now,
          cached: true,
          progressGroup,
        });
        return [...hit];
      }
    }
    const inputResults = await Promise.all(
      v.inputs.map(async (inp) => {
        const outs = await this.result(inp.vertex);
        const out = outs[inp.index];
        if (!out) throw new Error(`vertex ${inp.vertex} has no output ${inp.index}`);
        return out;
      }),
    );
    this.abort.signal.throwIfAborted();
    const started = Date.now();
    const run = async (signal: AbortSignal, emit: (e: ProgressEvent) => void): Promise<OutputResult[]> => {
      emit({ type: "vertex", vertex: d, name, inputs, started, progressGroup });
      try {
        const outs = await worker.execute(v, inputResults, this.context(d, emit, signal));
        // Recorded only after the worker committed every output, so a crash never leaves a key without a result.
        if (key) await cache.put(key, outs, name);
        emit({ type: "vertex", vertex: d, name, inputs, started, completed: Date.now(), progressGroup });
        return outs;
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        emit({
          type: "vertex",
          vertex: d,
          name,
          inputs,
          started,
          completed: Date.now(),
          error: msg,
          progressGroup,
        });
        throw err;
      }
    };
    try {
      // Local contexts are per build: never shared between builds, never deduplicated by key.
      if (!key) return await run(this.abort.signal, this.emit);
      const outs = await this.solver.execShared(key, run, this.emit, this.abort.signal);
      this.opts.onResult?.(d, key, outs);
      return outs;
    } catch (err) {
      if (err instanceof VertexError || (err instanceof Error && err.name === "AbortError")) throw err;
      throw new VertexError(d, name, err);
    }
  }
}

/** Proxy settings reach the process but not the key, as in BuildKit: a proxy change reuses the cache. */
function withoutProxyEnv(op: Vertex["op"]): Vertex["op"] {
  if (op.kind !== "exec" || !op.meta.proxyEnv) return op;
  const { proxyEnv: _proxy, ...meta } = op.meta;
  return { ...op, meta };
}

/** A fallback progress name when the definition has no description for a vertex. */
export function describeOp(v: Vertex): string {
  const op = v.op;
  switch (op.kind) {
    case "source":
      return op.identifier;
    case "exec":
      return op.meta.args.join(" ");
    case "file":
      return op.steps.map((s) => s.action.type).join(", ");
    case "merge":
      return "merge";
    case "diff":
      return "diff";
  }
}
