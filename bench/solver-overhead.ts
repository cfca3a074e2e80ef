// Solver overhead per vertex: a 500-vertex graph of trivial FileOps (a chain and a fan-in) solved
// with a worker that does no I/O, so the time measured is the solver's own (keys, scheduling,
// cache lookups and records, progress events). Target: under 1 ms per vertex.
// Run: npx tsx bench/solver-overhead.ts
import { performance } from "node:perf_hooks";
import { type Definition, vertexDigest } from "../src/llb/definition.js";
import type { Vertex, VertexMetadata } from "../src/llb/ops.js";
import type { Digest } from "../src/oci/digest.js";
import type { SnapshotId } from "../src/snapshot/types.js";
import { Solver } from "../src/solver/solver.js";
import type { OpWorker, OutputResult, ResultCache } from "../src/solver/types.js";

const VERTICES = 500;

function graph(seed: string): Definition {
  const vertices = new Map<Digest, Vertex>();
  const metadata = new Map<Digest, VertexMetadata>();
  let prev: Digest | undefined;
  const leaves: Digest[] = [];
  for (let i = 0; i < VERTICES - 1; i++) {
    const v: Vertex = {
      op: {
        kind: "file",
        steps: [
          {
            input: prev ? 0 : -1,
            output: 0,
            action: {
              type: "mkfile",
              path: `/f${i}`,
              mode: 0o644,
              data: Buffer.from(`${seed}${i}`).toString("base64"),
            },
          },
        ],
      },
      inputs: prev ? [{ vertex: prev, index: 0 }] : [],
    };
    const d = vertexDigest(v);
    vertices.set(d, v);
    metadata.set(d, { description: `mkfile /f${i}` });
    // Every 10th vertex starts a new chain, so the graph has parallel branches joined at the end.
    if (i % 10 === 9) {
      leaves.push(d);
      prev = undefined;
    } else prev = d;
  }
  if (prev) leaves.push(prev);
  const join: Vertex = {
    op: { kind: "merge", inputs: leaves.map((_, i) => i) },
    inputs: leaves.map((vertex) => ({ vertex, index: 0 })),
  };
  const root = vertexDigest(join);
  vertices.set(root, join);
  return { vertices, metadata, root: { vertex: root, index: 0 } };
}

class NoIoWorker implements OpWorker {
  executed = 0;
  async contentKey() {
    return undefined;
  }
  async selectionKey() {
    return undefined;
  }
  cacheable() {
    return true;
  }
  async execute(): Promise<OutputResult[]> {
    this.executed++;
    return [{ kind: "snapshot", id: `s${this.executed}` as SnapshotId }];
  }
  async resultExists() {
    return true;
  }
}

class MapCache implements ResultCache {
  private readonly m = new Map<Digest, readonly OutputResult[]>();
  async get(k: Digest) {
    return this.m.get(k);
  }
  async put(k: Digest, o: readonly OutputResult[]) {
    this.m.set(k, o);
  }
}

const runs: number[] = [];
for (let r = 0; r < 7; r++) {
  const def = graph(`run${r}-`);
  const worker = new NoIoWorker();
  let events = 0;
  const t = performance.now();
  await new Solver({ cache: new MapCache() }).solve(def, { worker, onProgress: () => events++ });
  runs.push(performance.now() - t);
  if (worker.executed !== VERTICES) throw new Error(`executed ${worker.executed}, expected ${VERTICES}`);
}
runs.sort((a, b) => a - b);
const median = runs[Math.floor(runs.length / 2)]!;
console.log(
  `solver: ${VERTICES} vertices cold in ${median.toFixed(1)} ms median = ${(median / VERTICES).toFixed(3)} ms/vertex (target < 1)`,
);
