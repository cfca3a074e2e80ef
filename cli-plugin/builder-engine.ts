// The engine a command runs on: the selected builder's node for the requested platforms.
import type { Command } from "commander";
import { planNodes } from "../drivers/node-selection.js";
import type { BuildEngine } from "../src/engine/types.js";
import { formatPlatform, type Platform } from "../src/oci/platform.js";
import { resolveBuilder } from "./store/resolve-builder.js";

/** The global `--builder` flag, wherever the command sits in the tree. */
export function builderFlag(cmd: Command): string | undefined {
  return (cmd.optsWithGlobals() as { builder?: string }).builder;
}

/**
 * Opens the engine of the node that builds `platforms` and runs `fn` with it. Builds whose
 * platforms fall to different nodes need a cross-node index join, which the client does not do yet.
 */
export async function withBuilderEngine<T>(
  builderName: string | undefined,
  env: NodeJS.ProcessEnv,
  platforms: readonly Platform[],
  fn: (engine: BuildEngine) => Promise<T>,
): Promise<T> {
  const builder = await resolveBuilder({ builder: builderName, env });
  const plan = planNodes(
    platforms,
    builder.nodes.map((n) => ({ declared: n.platforms, reported: n.platforms })),
  );
  if (plan.kind !== "assigned") throw new Error(`builder ${builder.name}: its nodes' platforms are unknown`);
  const nodes = new Set(plan.assignments.map((a) => a.node));
  if (nodes.size > 1) {
    const where = plan.assignments
      .map((a) => `${a.platforms.map(formatPlatform).join(",")} on ${builder.nodes[a.node]!.name}`)
      .join("; ");
    throw new Error(
      `builder ${builder.name} would split this build across nodes (${where}); building on several nodes at once is not supported yet: build each platform with --platform separately`,
    );
  }
  const node = builder.nodes[[...nodes][0] ?? 0]!;
  const engine = await node.driver.engine();
  try {
    return await fn(engine);
  } finally {
    await engine.close();
  }
}
