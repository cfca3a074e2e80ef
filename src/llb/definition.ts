// Canonical encoding of LLB vertices and definitions: the same graph always gives the same bytes
// and digests, whatever the key order of the objects it was built from or the process building it.
import { type Digest, sha256Digest } from "../oci/digest.js";
import type { OutputRef, Vertex, VertexMetadata } from "./ops.js";

/**
 * JSON with object keys sorted and `undefined` members dropped. Arrays keep their order (it is
 * meaningful: args, mounts, steps). This is the one encoding digests are computed over.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) throw new Error("non-finite number in LLB");
    return JSON.stringify(value);
  }
  if (Array.isArray(value))
    return `[${value.map((v) => (v === undefined ? "null" : canonicalJson(v))).join(",")}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
}

/** A vertex's digest covers its op, platform, flags and its inputs' digests (inside OutputRefs). */
export function vertexDigest(v: Vertex): Digest {
  return sha256Digest(canonicalJson(v));
}

/** A complete build graph: vertices in dependency order (inputs before users) and the result. */
export interface Definition {
  readonly vertices: ReadonlyMap<Digest, Vertex>;
  readonly metadata: ReadonlyMap<Digest, VertexMetadata>;
  /** The requested result; undefined means an empty (scratch) result. */
  readonly root?: OutputRef;
}

interface SerializedDefinition {
  version: 1;
  vertices: { digest: Digest; vertex: Vertex; metadata?: VertexMetadata }[];
  root?: OutputRef;
}

/** Vertices reachable from the root, inputs first, ties broken by digest for determinism. */
export function topologicalOrder(def: Definition): Digest[] {
  const out: Digest[] = [];
  const seen = new Set<Digest>();
  const visit = (d: Digest, stack: Set<Digest>) => {
    if (seen.has(d)) return;
    if (stack.has(d)) throw new Error(`LLB definition has a cycle through ${d}`);
    const v = def.vertices.get(d);
    if (!v) throw new Error(`LLB definition references missing vertex ${d}`);
    stack.add(d);
    for (const inp of v.inputs) visit(inp.vertex, stack);
    stack.delete(d);
    seen.add(d);
    out.push(d);
  };
  if (def.root) visit(def.root.vertex, new Set());
  return out;
}

/** The byte-stable serialized form (only vertices the root needs are kept). */
export function marshalDefinition(def: Definition): string {
  const order = topologicalOrder(def);
  const ser: SerializedDefinition = {
    version: 1,
    vertices: order.map((d) => ({ digest: d, vertex: def.vertices.get(d)!, metadata: def.metadata.get(d) })),
    root: def.root,
  };
  return canonicalJson(ser);
}

/** Parses and verifies a serialized definition: every digest is recomputed, every input exists. */
export function unmarshalDefinition(text: string): Definition {
  const ser = JSON.parse(text) as SerializedDefinition;
  if (ser.version !== 1 || !Array.isArray(ser.vertices))
    throw new Error("not a Kiln LLB definition (version 1)");
  const vertices = new Map<Digest, Vertex>();
  const metadata = new Map<Digest, VertexMetadata>();
  for (const { digest, vertex, metadata: md } of ser.vertices) {
    const actual = vertexDigest(vertex);
    if (actual !== digest)
      throw new Error(`LLB vertex digest mismatch: declared ${digest}, computed ${actual}`);
    for (const inp of vertex.inputs) {
      if (!vertices.has(inp.vertex))
        throw new Error(`LLB vertex ${digest} uses ${inp.vertex} before its definition`);
    }
    vertices.set(digest, vertex);
    if (md) metadata.set(digest, md);
  }
  if (ser.root && !vertices.has(ser.root.vertex))
    throw new Error(`LLB root ${ser.root.vertex} is not defined`);
  return { vertices, metadata, root: ser.root };
}
