// `kiln rm [NAME…] [--keep-state] [--keep-daemon] [--all-inactive] [--force]`: removes builders,
// their engines and (unless --keep-state) the engines' state.
import { createInterface } from "node:readline/promises";
import type { Command } from "commander";
import { UsageError } from "../errors.js";
import { BuilderStore } from "../store/builder-store.js";
import { DEFAULT_BUILDER } from "../store/node-group.js";
import { reportNode } from "../store/node-report.js";
import {
  type Builder,
  builderFromGroup,
  loadBuilder,
  selectedBuilderName,
} from "../store/resolve-builder.js";

export interface RemoveBuilderOptions {
  readonly names: readonly string[];
  readonly keepState: boolean;
  readonly keepDaemon: boolean;
  readonly allInactive: boolean;
  readonly force: boolean;
  readonly builderFlag?: string;
}

async function removeOne(store: BuilderStore, builder: Builder, opts: RemoveBuilderOptions): Promise<void> {
  if (builder.isDefault) throw new UsageError("default is a reserved name and cannot be removed");
  const failures: string[] = [];
  await Promise.all(
    builder.nodes.map((n) =>
      n.driver
        .rm({ force: opts.force, keepState: opts.keepState, keepDaemon: opts.keepDaemon })
        .catch((err: Error) => failures.push(`${n.name}: ${err.message}`)),
    ),
  );
  // An unreachable node must not keep a builder in the store forever: it goes, with a warning.
  for (const f of failures) process.stderr.write(`WARNING: failed to remove node ${f}\n`);
  await store.transaction((tx) => tx.remove(builder.name));
}

/** Removes builders; returns the names removed. */
export async function removeBuilders(
  opts: RemoveBuilderOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string[]> {
  const store = BuilderStore.forEnv(env);
  if (opts.allInactive) {
    if (opts.names.length) throw new UsageError("cannot specify builder names with --all-inactive");
    const inactive: Builder[] = [];
    for (const ng of await store.list()) {
      const b = builderFromGroup(ng, env);
      const reports = await Promise.all(b.nodes.map((n) => reportNode(n)));
      if (!reports.some((r) => r.status === "running")) inactive.push(b);
    }
    for (const b of inactive) await removeOne(store, b, opts);
    return inactive.map((b) => b.name);
  }
  const names = opts.names.length
    ? opts.names
    : [(await selectedBuilderName({ builder: opts.builderFlag, env, store })) ?? DEFAULT_BUILDER];
  const removed: string[] = [];
  for (const name of names) {
    const builder = await loadBuilder(store, name, env);
    await removeOne(store, builder, opts);
    removed.push(builder.name);
  }
  return removed;
}

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } catch {
    return false;
  } finally {
    rl.close();
  }
}

export function registerRmCommand(program: Command): void {
  program
    .command("rm")
    .description("remove one or more builder instances")
    .argument("[names...]", "builder names (default: the current builder)")
    .option("--keep-state", "keep the engine's state (cache) for a later builder of the same name", false)
    .option("--keep-daemon", "keep the engine running; only forget the builder", false)
    .option("--all-inactive", "remove all builders that are not running", false)
    .option("-f, --force", "do not prompt for confirmation", false)
    .action(async (names: string[], o: Record<string, boolean>, cmd: Command) => {
      if (o.allInactive && !o.force) {
        const ok = await confirm(
          "WARNING! This will remove all builders that are not in running state. Are you sure you want to continue? [y/N] ",
        );
        if (!ok) return;
      }
      const removed = await removeBuilders({
        names,
        keepState: o.keepState!,
        keepDaemon: o.keepDaemon!,
        allInactive: o.allInactive!,
        force: o.force!,
        builderFlag: cmd.optsWithGlobals().builder as string | undefined,
      });
      for (const n of removed) process.stderr.write(`${n} removed\n`);
    });
}
