import assert from "node:assert/strict";
import {
  type Definition,
  marshalDefinition,
  unmarshalDefinition,
  vertexDigest,
} from "../../../src/llb/definition.js";
import type { Vertex, VertexMetadata } from "../../../src/llb/ops.js";
import type { Digest } from "../../../src/oci/digest.js";
import type { SnapshotId } from "../../../src/snapshot/types.js";
import type { ProgressEvent } from "../../../src/solver/progress.js";
import { Solver, VertexError } from "../../../src/solver/solver.js";
import type { OpWorker, OutputResult, ResultCache, VertexContext } from "../../../src/solver/types.js";

/** An in-memory worker whose "exec" ops sleep for `args[1]` ms; it records what ran and when. */
class RecordingWorker implements OpWorker {
  readonly runs: { name: string; start: number; end: number }[] = [];
  contexts = new Map<string, string>();
  async contentKey(v: Vertex): Promise<string | undefined> {
    return v.op.kind === "source" && v.op.identifier.startsWith("local://")
      ? this.contexts.get(v.op.identifier)
      : undefined;
  }
  async selectionKey(): Promise<string | undefined> {
    return undefined;
  }
  cacheable(v: Vertex): boolean {
    return !(v.op.kind === "source" && v.op.identifier.startsWith("local://"));
  }
  async execute(v: Vertex, _inputs: readonly OutputResult[], ctx: VertexContext): Promise<OutputResult[]> {
    const start = Date.now();
    if (v.op.kind === "exec") {
      const [cmd, ms] = v.op.meta.args;
      if (cmd === "fail") throw new Error("exit code 1");
      ctx.log(1, Buffer.from(`running ${ctx.name}\n`));
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, Number(ms ?? 0));
        ctx.signal.addEventListener("abort", () => {
          clearTimeout(t);
          reject(Object.assign(new Error("cancelled"), { name: "AbortError" }));
        });
      });
    }
    this.runs.push({ name: ctx.name, start, end: Date.now() });
    return [{ kind: "snapshot", id: `snap-${ctx.digest.slice(7, 19)}` as SnapshotId }];
  }
  async resultExists(): Promise<boolean> {
    return true;
  }
}

class MemoryCache implements ResultCache {
  readonly map = new Map<Digest, readonly OutputResult[]>();
  async get(key: Digest) {
    return this.map.get(key);
  }
  async put(key: Digest, outputs: readonly OutputResult[]) {
    this.map.set(key, outputs);
  }
}

/** Builds definitions by hand: a tiny graph builder over real LLB vertices. */
class Graph {
  readonly vertices = new Map<Digest, Vertex>();
  readonly metadata = new Map<Digest, VertexMetadata>();
  add(v: Vertex, name: string): Digest {
    const d = vertexDigest(v);
    this.vertices.set(d, v);
    this.metadata.set(d, { description: name });
    return d;
  }
  source(id: string): Digest {
    return this.add({ op: { kind: "source", identifier: id, attrs: {} }, inputs: [] }, id);
  }
  exec(name: string, ms: number, inputs: Digest[], cmd = "sleep"): Digest {
    return this.add(
      {
        op: {
          kind: "exec",
          meta: { args: [cmd, String(ms), name], env: [], cwd: "/", user: "root" },
          mounts: inputs.map((_, i) => ({
            type: "bind" as const,
            input: i,
            dest: i === 0 ? "/" : `/in${i}`,
            output: i === 0 ? 0 : -1,
            readonly: i !== 0,
          })),
          network: "sandbox",
          security: "sandbox",
        },
        inputs: inputs.map((vertex) => ({ vertex, index: 0 })),
      },
      name,
    );
  }
  def(root: Digest): Definition {
    return { vertices: this.vertices, metadata: this.metadata, root: { vertex: root, index: 0 } };
  }
}

function names(events: ProgressEvent[], pred: (e: ProgressEvent & { type: "vertex" }) => boolean): string[] {
  return events
    .filter((e): e is ProgressEvent & { type: "vertex" } => e.type === "vertex" && pred(e))
    .map((e) => e.name);
}

describe("solver", () => {
  it("runs independent vertices at the same time", async () => {
    const g = new Graph();
    const base = g.source("docker-image://busybox");
    const stages = [1, 2, 3, 4].map((i) => g.exec(`s${i}`, 150, [base]));
    const root = g.exec("join", 0, stages);
    const worker = new RecordingWorker();
    const t0 = Date.now();
    await new Solver({ cache: new MemoryCache() }).solve(g.def(root), { worker });
    const elapsed = Date.now() - t0;
    const s = worker.runs.filter((r) => r.name.startsWith("s"));
    assert.equal(s.length, 4);
    const overlap = Math.min(...s.map((r) => r.end)) > Math.max(...s.map((r) => r.start));
    assert.ok(overlap, "all four stages were running at one moment");
    assert.ok(elapsed < 450, `took ${elapsed} ms, expected about 150`);
  });

  it("executes only the vertices the result depends on", async () => {
    const g = new Graph();
    const base = g.source("docker-image://busybox");
    g.exec("unused", 0, [base]);
    const used = g.exec("used", 0, [base]);
    const worker = new RecordingWorker();
    await new Solver({ cache: new MemoryCache() }).solve(g.def(used), { worker });
    assert.deepEqual(worker.runs.map((r) => r.name).sort(), ["docker-image://busybox", "used"]);
  });

  it("reuses a result whose cache key is known and reports it cached", async () => {
    const g = new Graph();
    const root = g.exec("b", 0, [g.exec("a", 0, [g.source("docker-image://busybox")])]);
    const worker = new RecordingWorker();
    const cache = new MemoryCache();
    const solver = new Solver({ cache });
    await solver.solve(g.def(root), { worker });
    const runsBefore = worker.runs.length;
    const events: ProgressEvent[] = [];
    await solver.solve(g.def(root), { worker, onProgress: (e) => events.push(e) });
    assert.equal(worker.runs.length, runsBefore, "nothing executed the second time");
    assert.deepEqual(
      names(events, (e) => e.cached === true),
      ["b"],
      "the root hit, so its inputs were not even looked at",
    );
  });

  it("executes again with noCache", async () => {
    const g = new Graph();
    const root = g.exec("a", 0, [g.source("docker-image://busybox")]);
    const worker = new RecordingWorker();
    const solver = new Solver({ cache: new MemoryCache() });
    await solver.solve(g.def(root), { worker });
    await solver.solve(g.def(root), { worker, noCache: true });
    assert.equal(worker.runs.filter((r) => r.name === "a").length, 2);
  });

  it("changes the key of everything downstream when a local context's content changes", async () => {
    const g = new Graph();
    const root = g.exec("copy-and-build", 0, [
      g.exec("base", 0, [g.source("docker-image://busybox")]),
      g.source("local://context"),
    ]);
    const worker = new RecordingWorker();
    const solver = new Solver({ cache: new MemoryCache() });
    worker.contexts.set("local://context", "v1");
    await solver.solve(g.def(root), { worker });
    await solver.solve(g.def(root), { worker });
    assert.equal(worker.runs.filter((r) => r.name === "copy-and-build").length, 1);
    worker.contexts.set("local://context", "v2");
    await solver.solve(g.def(root), { worker });
    assert.equal(worker.runs.filter((r) => r.name === "copy-and-build").length, 2);
    assert.equal(
      worker.runs.filter((r) => r.name === "base").length,
      1,
      "the base did not depend on the context",
    );
  });

  it("executes an identical vertex once for two concurrent builds and shows both its progress", async () => {
    const g = new Graph();
    const root = g.exec("shared", 200, [g.source("docker-image://busybox")]);
    const worker = new RecordingWorker();
    const solver = new Solver({ cache: new MemoryCache() });
    const ev1: ProgressEvent[] = [];
    const ev2: ProgressEvent[] = [];
    const def = unmarshalDefinition(marshalDefinition(g.def(root)));
    await Promise.all([
      solver.solve(g.def(root), { worker, onProgress: (e) => ev1.push(e) }),
      solver.solve(def, { worker, onProgress: (e) => ev2.push(e) }),
    ]);
    assert.equal(worker.runs.filter((r) => r.name === "shared").length, 1);
    for (const ev of [ev1, ev2]) {
      assert.ok(
        ev.some((e) => e.type === "log" && e.data.toString().includes("running shared")),
        "each build saw the log",
      );
      assert.ok(names(ev, (e) => e.completed !== undefined && !e.cached).includes("shared"));
    }
  });

  it("fails the build with the failing step named and stops the other running steps", async () => {
    const g = new Graph();
    const base = g.source("docker-image://busybox");
    const slow = g.exec("slow", 5000, [base]);
    const bad = g.exec("bad", 0, [base], "fail");
    const root = g.exec("join", 0, [slow, bad]);
    const worker = new RecordingWorker();
    const t0 = Date.now();
    await assert.rejects(
      new Solver({ cache: new MemoryCache() }).solve(g.def(root), { worker }),
      (err: unknown) => {
        assert.ok(err instanceof VertexError);
        assert.equal(err.vertexName, "bad");
        assert.match(err.message, /bad: exit code 1/);
        return true;
      },
    );
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(Date.now() - t0 < 2000, "the slow step was cancelled");
    assert.ok(!worker.runs.some((r) => r.name === "slow"), "the slow step never completed");
  });

  it("rejects with an AbortError when the build is cancelled", async () => {
    const g = new Graph();
    const root = g.exec("long", 5000, [g.source("docker-image://busybox")]);
    const ac = new AbortController();
    const p = new Solver({ cache: new MemoryCache() }).solve(g.def(root), {
      worker: new RecordingWorker(),
      signal: ac.signal,
    });
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(p, (err: Error) => err.name === "AbortError");
  });

  it("does not record a failed step in the cache", async () => {
    const g = new Graph();
    const root = g.exec("bad", 0, [g.source("docker-image://busybox")], "fail");
    const cache = new MemoryCache();
    await assert.rejects(new Solver({ cache }).solve(g.def(root), { worker: new RecordingWorker() }));
    assert.equal(cache.map.size, 1, "only the source was recorded");
  });
});
