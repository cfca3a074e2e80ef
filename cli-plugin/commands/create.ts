// `kiln create [ENDPOINT]`: makes a builder instance or changes one (Buildx's `buildx create`).
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { currentDockerContext } from "../../drivers/docker-api/docker-endpoint.js";
import type { DriverFactory } from "../../drivers/driver.js";
import { defaultFactory, driverFactory } from "../../drivers/registry.js";
import { UsageError } from "../errors.js";
import { splitCsv } from "../options/csv.js";
import { BuilderStore } from "../store/builder-store.js";
import {
  leaveNode,
  type NodeGroup,
  normalizePlatforms,
  updateNode,
  validateBuilderName,
} from "../store/node-group.js";
import { builderFromGroup, dockerEndpointKey } from "../store/resolve-builder.js";

export interface CreateOptions {
  readonly endpoint?: string;
  readonly name?: string;
  readonly driver?: string;
  readonly driverOpts: readonly string[];
  readonly platforms: readonly string[];
  readonly append: boolean;
  readonly node?: string;
  readonly leave: boolean;
  readonly use: boolean;
  readonly bootstrap: boolean;
  readonly engineFlags?: string;
  readonly configFile?: string;
}

/** `--driver-opt` values: CSV `k=v` lists; `env.NAME` keeps the case of NAME. */
export function parseDriverOpts(values: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const value of values) {
    for (const field of splitCsv(value)) {
      if (field.trim() === "") continue;
      const eq = field.indexOf("=");
      if (eq <= 0)
        throw new UsageError(`invalid value ${JSON.stringify(field)} for --driver-opt: expected key=value`);
      const key = field.slice(0, eq).trim();
      out[key.startsWith("env.") ? key : key.toLowerCase()] = field.slice(eq + 1);
    }
  }
  return out;
}

/** Engine daemon flags as one string, split into words as a shell would (quotes group words). */
export function splitFlags(value: string): string[] {
  const words: string[] = [];
  let cur: string | undefined;
  let quote: string | undefined;
  for (const c of value) {
    if (quote) {
      if (c === quote) quote = undefined;
      else cur = (cur ?? "") + c;
    } else if (c === '"' || c === "'") {
      quote = c;
      cur ??= "";
    } else if (/\s/.test(c)) {
      if (cur !== undefined) words.push(cur);
      cur = undefined;
    } else cur = (cur ?? "") + c;
  }
  if (quote) throw new UsageError(`unterminated quote in engine flags ${JSON.stringify(value)}`);
  if (cur !== undefined) words.push(cur);
  return words;
}

/** Creates or changes the builder; returns its name. */
export async function createBuilder(
  opts: CreateOptions,
  env: NodeJS.ProcessEnv = process.env,
  log = (_: string) => {},
): Promise<string> {
  if (opts.leave) {
    if (!opts.name) throw new UsageError("leave requires instance name");
    if (!opts.node) throw new UsageError("leave requires node name");
  }
  if (opts.append && !opts.name)
    throw new UsageError("--append requires --name of the builder to add a node to");
  let name: string;
  try {
    name = opts.name ? validateBuilderName(opts.name) : `builder-${randomBytes(4).toString("hex")}`;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const driverOpts = parseDriverOpts(opts.driverOpts);
  let platforms: string[];
  try {
    platforms = normalizePlatforms(opts.platforms);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const flags = opts.engineFlags !== undefined ? splitFlags(opts.engineFlags) : undefined;
  let configFile: string | undefined;
  if (opts.configFile !== undefined) {
    try {
      configFile = readFileSync(opts.configFile, "utf8");
    } catch (err) {
      throw new UsageError(`cannot read config file ${opts.configFile}: ${(err as Error).message}`);
    }
  }

  const store = BuilderStore.forEnv(env);
  const group = await store.transaction(async (tx) => {
    const existing = await tx.get(name);
    if (opts.leave) {
      if (!existing) throw new Error(`failed to find instance ${name} for leave`);
      const ng = leaveNode(existing, opts.node!);
      await tx.save(ng);
      return ng;
    }
    let factory: DriverFactory;
    try {
      factory = opts.driver
        ? driverFactory(opts.driver)
        : existing
          ? driverFactory(existing.driver)
          : defaultFactory(opts.endpoint ?? "");
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (!factory.allowsInstances)
      throw new UsageError(
        `the ${factory.name} driver is the default builder's and cannot be used to create builders`,
      );
    // A builder's nodes may differ in driver (an amd64 machine here, an arm64 one remote), but a
    // node keeps the driver it was made with.
    const changesNode =
      opts.node !== undefined && existing?.nodes.some((n) => n.name === opts.node!.toLowerCase());
    if (existing && existing.driver !== factory.name && (!opts.append || changesNode)) {
      throw new UsageError(
        `existing instance ${name} uses the ${existing.driver} driver, not ${factory.name}: add a node of another driver with --append`,
      );
    }
    if (!existing && opts.append) throw new Error(`failed to find instance ${name} for append`);
    // docker-container nodes without an endpoint live on the current Docker context.
    const endpoint = opts.endpoint ?? (factory.name === "docker-container" ? currentDockerContext(env) : "");
    const base: NodeGroup = existing ?? { name, driver: factory.name, nodes: [], dynamic: false };
    const ng = updateNode(base, {
      name: opts.node,
      endpoint,
      platforms: opts.platforms.length ? platforms : undefined,
      driverOpts: opts.driverOpts.length || !existing ? driverOpts : undefined,
      flags,
      configFile,
      append: opts.append,
      driver: factory.name,
    });
    // Making the drivers validates every node (options, endpoint) before anything is saved.
    try {
      builderFromGroup(ng, env);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    await tx.save(ng);
    await tx.touchActivity(name);
    if (opts.use) await tx.setCurrent(dockerEndpointKey(env), name, false, false);
    return ng;
  });

  if (opts.bootstrap) {
    const builder = builderFromGroup(group, env);
    await Promise.all(builder.nodes.map((n) => n.driver.bootstrap(log)));
  }
  return name;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerCreateCommand(program: Command): void {
  program
    .command("create")
    .description("create a new builder instance")
    .argument("[endpoint]", "Docker context or host (docker-container), or engine address (remote)")
    .option("--name <name>", "builder instance name")
    .option("--driver <driver>", "driver to use (docker-container, kubernetes, remote)")
    .option("--driver-opt <options>", "options for the driver (key=value, CSV; repeatable)", collect, [])
    .option("--platform <platforms>", "fixed platforms for the current node (repeatable)", collect, [])
    .option("--append", "append a node to the builder instead of changing it", false)
    .option("--node <name>", "create or modify this node")
    .option("--leave", "remove a node from the builder instead of changing it", false)
    .option("--use", "set the current builder instance", false)
    .option("--bootstrap", "boot the builder after creation", false)
    .option("--engine-flags <flags>", "flags for the engine daemon")
    .option("--buildkitd-flags <flags>", "alias of --engine-flags")
    .option("--config <file>", "engine configuration file")
    .option("--buildkitd-config <file>", "alias of --config")
    .action(async (endpoint: string | undefined, o: Record<string, unknown>) => {
      const name = await createBuilder(
        {
          endpoint,
          name: o.name as string | undefined,
          driver: o.driver as string | undefined,
          driverOpts: o.driverOpt as string[],
          platforms: o.platform as string[],
          append: o.append as boolean,
          node: o.node as string | undefined,
          leave: o.leave as boolean,
          use: o.use as boolean,
          bootstrap: o.bootstrap as boolean,
          engineFlags: (o.engineFlags ?? o.buildkitdFlags) as string | undefined,
          configFile: (o.config ?? o.buildkitdConfig) as string | undefined,
        },
        process.env,
        (line) => process.stderr.write(`#1 ${line}\n`),
      );
      process.stdout.write(`${name}\n`);
    });
}
