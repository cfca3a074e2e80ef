// The engines a command runs on: the selected builder's nodes, each given the requested platforms
// it builds (drivers/node-selection.ts decides which), booted when they are not running.
import type { Command } from "commander";
import { type NodeAssignment, type NodePlatforms, planNodes } from "../drivers/node-selection.js";
import type { NodePlacement, PlacedNode } from "../src/client/multi-node.js";
import type { BuildEngine } from "../src/engine/types.js";
import { formatPlatform, type Platform } from "../src/oci/platform.js";
import { type Builder, type BuilderNode, resolveBuilder } from "./store/resolve-builder.js";

/** The global `--builder` flag, wherever the command sits in the tree. */
export function builderFlag(cmd: Command): string | undefined {
  return (cmd.optsWithGlobals() as { builder?: string }).builder;
}

/** Opens nodes' engines once each (booting a node that is not running), and closes them all. */
class NodeEngines {
  private readonly opened = new Map<number, Promise<BuildEngine>>();

  constructor(private readonly builder: Builder) {}

  open(index: number): Promise<BuildEngine> {
    let engine = this.opened.get(index);
    if (!engine) {
      engine = this.connect(this.builder.nodes[index]!);
      this.opened.set(index, engine);
    }
    return engine;
  }

  private async connect(node: BuilderNode): Promise<BuildEngine> {
    const where = this.builder.nodes.length > 1 ? `node ${node.name} of builder ${this.builder.name}` : "";
    try {
      // As Buildx boots a builder's nodes for a build: create or start what hosts the engine.
      if ((await node.driver.info()).status !== "running") await node.driver.bootstrap();
      return await node.driver.engine();
    } catch (err) {
      if (!where) throw err;
      throw new Error(`${where}: ${(err as Error).message}`, { cause: err });
    }
  }

  async closeAll(): Promise<void> {
    const engines = await Promise.allSettled(this.opened.values());
    await Promise.allSettled(engines.flatMap((e) => (e.status === "fulfilled" ? [e.value.close()] : [])));
  }
}

/** What each node builds natively or under emulation, as its engine reports (booting it). */
async function reportedPlatforms(builder: Builder, engines: NodeEngines): Promise<NodePlatforms[]> {
  return Promise.all(
    builder.nodes.map(async (node, i) => {
      const info = await (await engines.open(i)).info();
      return { declared: node.platforms, reported: info.nativePlatforms, emulated: info.emulatedPlatforms };
    }),
  );
}

/**
 * Opens the nodes the selected builder gives `platforms` to and runs `fn` with them: one node
 * (a single-node builder, no platform asked for, or all platforms on one node), or several, each
 * with its share of the platforms.
 */
export async function withBuildNodes<T>(
  builderName: string | undefined,
  env: NodeJS.ProcessEnv,
  platforms: readonly Platform[],
  fn: (placement: NodePlacement) => Promise<T>,
): Promise<T> {
  const builder = await resolveBuilder({ builder: builderName, env });
  const engines = new NodeEngines(builder);
  try {
    let assignments: readonly NodeAssignment[];
    let known: NodePlatforms[] = [];
    if (builder.nodes.length === 1) {
      assignments = [{ node: 0, platforms, unmatched: [] }];
    } else {
      let plan = planNodes(
        platforms,
        builder.nodes.map((n) => ({ declared: n.platforms })),
      );
      if (plan.kind === "needs-reported") {
        known = await reportedPlatforms(builder, engines);
        plan = planNodes(platforms, known);
      }
      if (plan.kind !== "assigned")
        throw new Error(`builder ${builder.name}: its nodes' platforms are unknown`);
      assignments = plan.assignments;
    }
    const nodes: PlacedNode[] = await Promise.all(
      assignments.map(async (a) => ({
        name: builder.nodes[a.node]!.name,
        // With one node it builds the whole request, as asked.
        platforms: assignments.length === 1 ? platforms : a.platforms,
        engine: await engines.open(a.node),
      })),
    );
    // Buildx sends such platforms to the first node without a word; say so, with what there is.
    const builds = known
      .map((n, i) => {
        const all = [...n.declared, ...(n.reported ?? []), ...(n.emulated ?? [])];
        const names = [...new Set(all.map(formatPlatform))];
        return `${builder.nodes[i]!.name} ${names.join(", ")}`;
      })
      .join("; ");
    const warnings = assignments.flatMap((a) =>
      a.unmatched.map(
        (p) =>
          `no node of builder ${builder.name} declares or runs ${formatPlatform(p)} (its nodes: ${builds}): node ${builder.nodes[a.node]!.name} builds it, under emulation if its host can`,
      ),
    );
    return await fn({ builder: builder.name, nodes, ...(warnings.length ? { warnings } : {}) });
  } finally {
    await engines.closeAll();
  }
}

/** Opens the engine of the node that builds `platforms` (the first node when they fall to several). */
export async function withBuilderEngine<T>(
  builderName: string | undefined,
  env: NodeJS.ProcessEnv,
  platforms: readonly Platform[],
  fn: (engine: BuildEngine) => Promise<T>,
): Promise<T> {
  return withBuildNodes(builderName, env, platforms, (placement) => fn(placement.nodes[0]!.engine));
}
