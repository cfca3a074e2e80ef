// Which builder a command runs on, and its nodes' drivers. Selection, as in Buildx: the
// --builder flag, else $KILN_BUILDER, else $BUILDX_BUILDER, else the builder selected with `use`
// for the current Docker endpoint, else the default builder (the embedded engine).

import { resolveDockerEndpoint } from "../../drivers/docker-api/docker-endpoint.js";
import type { Driver } from "../../drivers/driver.js";
import { driverFactory } from "../../drivers/registry.js";
import { type Platform, parsePlatform } from "../../src/oci/platform.js";
import { BuilderStore } from "./builder-store.js";
import { DEFAULT_BUILDER, type NodeGroup, type StoredNode } from "./node-group.js";

export interface BuilderNode {
  readonly name: string;
  readonly endpoint: string;
  /** Platforms declared at create (--platform). */
  readonly platforms: readonly Platform[];
  readonly driver: Driver;
  /** The stored node; absent for the default builder. */
  readonly stored?: StoredNode;
}

export interface Builder {
  readonly name: string;
  readonly driverName: string;
  readonly nodes: readonly BuilderNode[];
  /** The implicit default builder (embedded engine), which is not in the store. */
  readonly isDefault: boolean;
  readonly group?: NodeGroup;
}

export interface ResolveBuilderOptions {
  /** The --builder flag. */
  readonly builder?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly store?: BuilderStore;
}

/** The key `use` selections are stored under: the current Docker context's daemon address. */
export function dockerEndpointKey(env: NodeJS.ProcessEnv = process.env): string {
  try {
    return resolveDockerEndpoint(undefined, env).host;
  } catch {
    // A current context that no longer exists: selections made for it cannot apply anyway.
    return "";
  }
}

/** The name the selection rules pick (undefined: the default builder). */
export async function selectedBuilderName(opts: ResolveBuilderOptions = {}): Promise<string | undefined> {
  const env = opts.env ?? process.env;
  const explicit = opts.builder || env.KILN_BUILDER || env.BUILDX_BUILDER;
  if (explicit) return explicit.toLowerCase() === DEFAULT_BUILDER ? undefined : explicit.toLowerCase();
  const store = opts.store ?? BuilderStore.forEnv(env);
  return store.current(dockerEndpointKey(env));
}

/** The selected builder with a driver for each node. */
export async function resolveBuilder(opts: ResolveBuilderOptions = {}): Promise<Builder> {
  const env = opts.env ?? process.env;
  const store = opts.store ?? BuilderStore.forEnv(env);
  const name = await selectedBuilderName({ ...opts, store, env });
  return name ? loadBuilder(store, name, env) : defaultBuilder(env);
}

/** A stored builder by name; an unknown name is an error telling how to list them. */
export async function loadBuilder(
  store: BuilderStore,
  name: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Builder> {
  if (name.toLowerCase() === DEFAULT_BUILDER) return defaultBuilder(env);
  const ng = await store.get(name);
  if (!ng) throw new Error(`no builder ${JSON.stringify(name)} found: run \`kiln ls\` to see the builders`);
  return builderFromGroup(ng, env);
}

export function builderFromGroup(ng: NodeGroup, env: NodeJS.ProcessEnv = process.env): Builder {
  const nodes = ng.nodes.map((n): BuilderNode => {
    const platforms = n.platforms.map(parsePlatform);
    const driver = driverFactory(n.driver ?? ng.driver).create({
      name: n.name,
      endpoint: n.endpoint,
      driverOpts: n.driverOpts,
      platforms,
      flags: n.flags,
      configFile: n.configFile,
      env,
    });
    return { name: n.name, endpoint: n.endpoint, platforms, driver, stored: n };
  });
  return { name: ng.name, driverName: ng.driver, nodes, isDefault: false, group: ng };
}

/** The default builder: one node, the engine inside this process. */
export function defaultBuilder(env: NodeJS.ProcessEnv = process.env): Builder {
  const driver = driverFactory("embedded").create({
    name: DEFAULT_BUILDER,
    endpoint: DEFAULT_BUILDER,
    driverOpts: {},
    platforms: [],
    flags: [],
    env,
  });
  return {
    name: DEFAULT_BUILDER,
    driverName: "embedded",
    nodes: [{ name: DEFAULT_BUILDER, endpoint: DEFAULT_BUILDER, platforms: [], driver }],
    isDefault: true,
  };
}
