// Which node of a builder builds which platform. As Buildx does: requested platforms are first
// matched strictly against the platforms nodes declare (--platform at create); if any is left
// over, against what the booted engines report: natively, then under emulation, then compatible
// variants; what is still left goes to the first node, which tries it under emulation. When several
// nodes can build a platform, it goes to the one given the fewest so far, so that work is spread
// over them. Platforms given to the same node are built in one solve.
import { formatPlatform, type Platform, platformMatches, samePlatform } from "../src/oci/platform.js";

export interface NodePlatforms {
  readonly declared: readonly Platform[];
  /** What the node's engine reports it builds natively; unknown until booted. */
  readonly reported?: readonly Platform[];
  /** What the node's engine reports it builds under emulation (QEMU binfmt, 32-bit modes). */
  readonly emulated?: readonly Platform[];
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

  const declaring = wanted.map((p) => nodesWhere(nodes, (n) => n.declared.some((d) => samePlatform(d, p))));
  if (declaring.every((c) => c.length > 0))
    return { kind: "assigned", assignments: group(wanted, spread(declaring), new Set()) };
  if (nodes.some((n) => n.reported === undefined)) return { kind: "needs-reported" };

  const unmatched = new Set<number>();
  const candidates = wanted.map((p, k) => {
    if (declaring[k]!.length) return declaring[k]!;
    const native = nodesWhere(nodes, (n) => n.reported!.some((r) => samePlatform(r, p)));
    if (native.length) return native;
    const emulating = nodesWhere(nodes, (n) => (n.emulated ?? []).some((r) => samePlatform(r, p)));
    if (emulating.length) return emulating;
    // A node whose engine runs `r` builds `p` when images for `p` run on `r` (arm/v7 runs arm/v6).
    const compatible = nodesWhere(nodes, (n) =>
      [...n.declared, ...n.reported!, ...(n.emulated ?? [])].some((r) => platformMatches(r, p)),
    );
    if (compatible.length) return compatible;
    unmatched.add(k);
    return [0];
  });
  return { kind: "assigned", assignments: group(wanted, spread(candidates), unmatched) };
}

function nodesWhere(nodes: readonly NodePlatforms[], test: (n: NodePlatforms) => boolean): number[] {
  return nodes.flatMap((n, i) => (test(n) ? [i] : []));
}

/**
 * One node per platform out of its candidates: the one given the fewest platforms so far (the
 * first of those on a tie). Platforms with fewer candidates choose first, so that a platform only
 * one node builds does not find that node's share taken by one that could have gone elsewhere.
 */
function spread(candidates: readonly (readonly number[])[]): number[] {
  const given = new Map<number, number>();
  const chosen: number[] = [];
  const order = candidates.map((_, k) => k).sort((a, b) => candidates[a]!.length - candidates[b]!.length);
  for (const k of order) {
    const node = candidates[k]!.reduce((best, i) =>
      (given.get(i) ?? 0) < (given.get(best) ?? 0) ? i : best,
    );
    given.set(node, (given.get(node) ?? 0) + 1);
    chosen[k] = node;
  }
  return chosen;
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
