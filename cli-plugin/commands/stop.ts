// `kiln stop [NAME]`: stops the builder's engines (their state stays).
import type { Command } from "commander";
import { BuilderStore } from "../store/builder-store.js";
import { loadBuilder, resolveBuilder } from "../store/resolve-builder.js";

export async function stopBuilder(
  name: string | undefined,
  builderFlag?: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const store = BuilderStore.forEnv(env);
  const builder = name
    ? await loadBuilder(store, name, env)
    : await resolveBuilder({ builder: builderFlag, env, store });
  await Promise.all(builder.nodes.map((n) => n.driver.stop(false)));
}

export function registerStopCommand(program: Command): void {
  program
    .command("stop")
    .description("stop the builder instance")
    .argument("[name]", "builder name")
    .action(async (name: string | undefined, _o: unknown, cmd: Command) => {
      await stopBuilder(name, cmd.optsWithGlobals().builder as string | undefined);
    });
}
