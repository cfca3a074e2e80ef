// `kiln use NAME [--default] [--global]`: selects the builder later commands run on.
import type { Command } from "commander";
import { BuilderStore } from "../store/builder-store.js";
import { DEFAULT_BUILDER } from "../store/node-group.js";
import { dockerEndpointKey } from "../store/resolve-builder.js";

export interface UseOptions {
  readonly name: string;
  /** Also keep it as this Docker endpoint's default when another endpoint's builder is selected. */
  readonly makeDefault: boolean;
  /** Select it whatever the Docker endpoint. */
  readonly global: boolean;
}

export async function useBuilder(opts: UseOptions, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const store = BuilderStore.forEnv(env);
  const key = dockerEndpointKey(env);
  await store.transaction(async (tx) => {
    if (opts.name.toLowerCase() === DEFAULT_BUILDER) {
      await tx.setCurrent(key, undefined, opts.global, opts.makeDefault);
      return;
    }
    const ng = await tx.get(opts.name);
    if (!ng)
      throw new Error(`run \`kiln ls\` to see the builders: no builder ${JSON.stringify(opts.name)} found`);
    await tx.setCurrent(key, ng.name, opts.global, opts.makeDefault);
  });
}

export function registerUseCommand(program: Command): void {
  program
    .command("use")
    .description("set the current builder instance")
    .argument("<name>", "builder name, or default")
    .option("--default", "set the builder as the default for the current Docker context", false)
    .option("--global", "the builder stays selected when the Docker context changes", false)
    .action(async (name: string, o: { default: boolean; global: boolean }) => {
      await useBuilder({ name, makeDefault: o.default, global: o.global });
    });
}
