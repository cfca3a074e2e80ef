// Which node of a builder builds which platform. As Buildx does: requested platforms are first
// matched strictly against the platforms nodes declare (--platform at create); if any is left
// over, against what the booted engines report (compatible variants allowed); what is still left
// goes to the first node, which builds it under emulation. Platforms given to the same node are
// built in one solve.
import { formatPlatform, type Platform, platformMatches, samePlatform } from "../src/oci/platform.js";

export interface NodePlatforms {
  readonly declared: readonly Platform[];
  /** What the node's engine reports it builds natively and under emulation; unknown until booted. */
  readonly reported?: readonly Platform[];
}

export interface NodeAssignment {
  /** Index of the node in the builder. */
  readonly node: number;
  readonly platforms: readonly Platform[];
  /** Of those, the ones no node declares or reports: built under emulation (QEMU) if at all. */
  readonly unmatched: readonly Platform[];
}

export type NodePlan =
  | { readonly kind: "assigned"; readonly assignments: readonly NodeAssignment[] }
  /** Declared platforms were not enough: boot every node, fill in `reported`, and plan again. */
  | { readonly kind: "needs-reported" };

/**
 * Plans a build over `nodes`. With no requested platform the first node builds its default one
 * (an assignment with no platforms).
 */
export function planNodes(requested: readonly Platform[], nodes: readonly NodePlatforms[]): NodePlan {
  if (nodes.length === 0) throw new Error("the builder has no nodes");
  const wanted = dedupe(requested);
  if (wanted.length === 0)
    return { kind: "assigned", assignments: [{ node: 0, platforms: [], unmatched: [] }] };

  const strict = wanted.map((p) => nodes.findIndex((n) => n.declared.some((d) => samePlatform(d, p))));
  if (strict.every((i) => i >= 0)) return { kind: "assigned", assignments: group(wanted, strict, new Set()) };
  if (nodes.some((n) => n.reported === undefined)) return { kind: "needs-reported" };

  const unmatched = new Set<number>();
  const chosen = wanted.map((p, k) => {
    if (strict[k]! >= 0) return strict[k]!;
    const exact = nodes.findIndex((n) => n.reported!.some((r) => samePlatform(r, p)));
    if (exact >= 0) return exact;
    // A node whose engine runs `r` builds `p` when images for `p` run on `r` (arm/v7 runs arm/v6).
    const compatible = nodes.findIndex((n) =>
      [...n.declared, ...n.reported!].some((r) => platformMatches(r, p)),
    );
    if (compatible >= 0) return compatible;
    unmatched.add(k);
    return 0;
  });
  return { kind: "assigned", assignments: group(wanted, chosen, unmatched) };
}

function group(
  wanted: readonly Platform[],
  chosen: readonly number[],
  unmatched: ReadonlySet<number>,
): NodeAssignment[] {
  const byNode = new Map<number, { platforms: Platform[]; unmatched: Platform[] }>();
  wanted.forEach((p, k) => {
    const node = chosen[k]!;
    let entry = byNode.get(node);
    if (!entry) byNode.set(node, (entry = { platforms: [], unmatched: [] }));
    entry.platforms.push(p);
    if (unmatched.has(k)) entry.unmatched.push(p);
  });
  return [...byNode.entries()].sort(([a], [b]) => a - b).map(([node, e]) => ({ node, ...e }));
}

function dedupe(ps: readonly Platform[]): Platform[] {
  const seen = new Set<string>();
  return ps.filter((p) => {
    const key = formatPlatform(p);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
