// A readable form of a definition for `kiln debug dump-llb`: one JSON document, vertices in
// dependency order (inputs first) with their digests, ops, platforms and progress names; mkfile
// data is shown decoded when it is text.
import { type Definition, topologicalOrder } from "./definition.js";
import type { Vertex } from "./ops.js";

function readable(v: Vertex): unknown {
  if (v.op.kind !== "file") return v;
  return {
    ...v,
    op: {
      ...v.op,
      steps: v.op.steps.map((s) => {
        if (s.action.type !== "mkfile") return s;
        const text = Buffer.from(s.action.data, "base64").toString("utf8");
        const printable = !/[\x00-\x08\x0e-\x1f\ufffd]/.test(text);
        return printable ? { ...s, action: { ...s.action, data: undefined, text } } : s;
      }),
    },
  };
}

/** Pretty JSON of the definition (stable: the same definition always dumps the same text). */
export function dumpLlb(def: Definition): string {
  const order = topologicalOrder(def);
  const vertices = order.map((d) => {
    const md = def.metadata.get(d);
    return { digest: d, ...(md ? { metadata: md } : {}), ...(readable(def.vertices.get(d)!) as object) };
  });
  return `${JSON.stringify({ root: def.root ?? null, vertices }, null, 2)}\n`;
}
