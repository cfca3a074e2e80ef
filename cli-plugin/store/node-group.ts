// A builder instance as the store keeps it: a named group of nodes, each an engine hosted by the
// group's driver at one endpoint. The pure rules for names and for adding, changing and removing
// nodes live here, so that `create --append`, `--node` and `--leave` behave as in Buildx.
import { formatPlatform, parsePlatform } from "../../src/oci/platform.js";

export interface StoredNode {
  readonly name: string;
  /** A Docker context name, a Docker host URL, or an engine address, as the driver understands. */
  readonly endpoint: string;
  /** Platforms declared with --platform, normalised (`linux/arm64`). */
  readonly platforms: readonly string[];
  readonly driverOpts: Readonly<Record<string, string>>;
  /** Engine daemon flags (--engine-flags / --buildkitd-flags), split into words. */
  readonly flags: readonly string[];
  /** The contents of the --config file, kept so the node can be recreated without the file. */
  readonly configFile?: string;
  /** The node's own driver, when it is not the group's (a node added by `create --append --driver`). */
  readonly driver?: string;
}

export interface NodeGroup {
  readonly name: string;
  readonly driver: string;
  readonly nodes: readonly StoredNode[];
  /** Nodes are discovered at run time (Kubernetes replicas), not listed. */
  readonly dynamic: boolean;
}

export const DEFAULT_BUILDER = "default";
const NAME = /^[a-zA-Z][a-zA-Z0-9._-]*$/;

/** A builder or node name, lowercased; refuses what Buildx refuses. */
export function validateName(name: string): string {
  if (!NAME.test(name)) {
    throw new Error(
      `invalid name ${name}, name needs to start with a letter and may not contain symbols, except ._-`,
    );
  }
  return name.toLowerCase();
}

/** A builder name a user may create: valid, and not the reserved `default`. */
export function validateBuilderName(name: string): string {
  const n = validateName(name);
  if (n === DEFAULT_BUILDER)
    throw new Error("default is a reserved name and cannot be used to identify builder instance");
  return n;
}

export function normalizePlatforms(specs: readonly string[]): string[] {
  const out: string[] = [];
  for (const spec of specs) {
    for (const part of spec.split(",")) {
      if (part.trim() === "") continue;
      const p = formatPlatform(parsePlatform(part));
      if (!out.includes(p)) out.push(p);
    }
  }
  return out;
}

export interface NodeChange {
  /** The node to change or add; a new node is named `<builder><N>` when not given. */
  readonly name?: string;
  readonly endpoint: string;
  readonly platforms?: readonly string[];
  readonly driverOpts?: Readonly<Record<string, string>>;
  readonly flags?: readonly string[];
  readonly configFile?: string;
  /** `create --append`: a new node may join a group that already has nodes. */
  readonly append: boolean;
  /** A new node's driver, when it is not the group's. */
  readonly driver?: string;
}

/** The group after adding or changing one node (Buildx's NodeGroup.Update). */
export function updateNode(ng: NodeGroup, change: NodeChange): NodeGroup {
  const platforms = change.platforms ? normalizePlatforms(change.platforms) : undefined;
  const name = change.name ? validateName(change.name) : undefined;
  const existing = name ? ng.nodes.findIndex((n) => n.name === name) : -1;
  // A node's platforms belong to it alone: the other nodes stop declaring them.
  const others = (keep: (i: number) => boolean): StoredNode[] =>
    ng.nodes.map((n, i) =>
      keep(i) && platforms?.length
        ? { ...n, platforms: n.platforms.filter((p) => !platforms.includes(p)) }
        : n,
    );
  if (existing >= 0) {
    const old = ng.nodes[existing]!;
    if (change.endpoint && ng.nodes.some((n, i) => i !== existing && n.endpoint === change.endpoint)) {
      throw new Error(`invalid duplicate endpoint ${change.endpoint}`);
    }
    const updated: StoredNode = {
      ...old,
      endpoint: change.endpoint || old.endpoint,
      platforms: platforms ?? old.platforms,
      driverOpts: change.driverOpts ?? old.driverOpts,
      flags: change.flags ?? old.flags,
      configFile: change.configFile ?? old.configFile,
    };
    const nodes = others((i) => i !== existing);
    nodes[existing] = updated;
    return { ...ng, nodes };
  }
  if (ng.nodes.length > 0 && !change.append) {
    throw new Error(
      `existing instance for "${ng.name}" but no append mode, specify the node name to make changes for existing instances`,
    );
  }
  if (ng.nodes.some((n) => n.endpoint === change.endpoint)) {
    throw new Error(`invalid duplicate endpoint ${change.endpoint}`);
  }
  const node: StoredNode = {
    name: name ?? nextNodeName(ng),
    endpoint: change.endpoint,
    platforms: platforms ?? [],
    driverOpts: change.driverOpts ?? {},
    flags: change.flags ?? [],
    ...(change.configFile !== undefined ? { configFile: change.configFile } : {}),
    ...(change.driver && change.driver !== ng.driver ? { driver: change.driver } : {}),
  };
  return { ...ng, nodes: [...others(() => true), node] };
}

/** The group without node `name` (`create --leave`); the last node cannot leave. */
export function leaveNode(ng: NodeGroup, name: string): NodeGroup {
  const n = name.toLowerCase();
  if (!ng.nodes.some((x) => x.name === n)) throw new Error(`node ${n} not found for ${ng.name}`);
  if (ng.nodes.length === 1) throw new Error(`can not leave last node, do you mean rm?`);
  return { ...ng, nodes: ng.nodes.filter((x) => x.name !== n) };
}

function nextNodeName(ng: NodeGroup): string {
  for (let i = 0; ; i++) {
    const candidate = `${ng.name}${i}`;
    if (!ng.nodes.some((n) => n.name === candidate)) return candidate;
  }
}

/** Reads a stored group, refusing files that are not one (a hand-edited or foreign file). */
export function parseNodeGroup(text: string, file: string): NodeGroup {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`invalid builder file ${file}: ${(err as Error).message}`);
  }
  const r = raw as Partial<NodeGroup>;
  if (
    !r ||
    typeof r !== "object" ||
    typeof r.name !== "string" ||
    typeof r.driver !== "string" ||
    !Array.isArray(r.nodes)
  ) {
    throw new Error(`invalid builder file ${file}: expected {name, driver, nodes}`);
  }
  const nodes: StoredNode[] = r.nodes.map((n: Partial<StoredNode>, i: number) => {
    if (!n || typeof n.name !== "string" || typeof n.endpoint !== "string") {
      throw new Error(`invalid builder file ${file}: node ${i} needs a name and an endpoint`);
    }
    return {
      name: n.name,
      endpoint: n.endpoint,
      platforms: Array.isArray(n.platforms) ? n.platforms.map(String) : [],
      driverOpts: n.driverOpts && typeof n.driverOpts === "object" ? { ...n.driverOpts } : {},
      flags: Array.isArray(n.flags) ? n.flags.map(String) : [],
      ...(typeof n.configFile === "string" ? { configFile: n.configFile } : {}),
      ...(typeof n.driver === "string" ? { driver: n.driver } : {}),
    };
  });
  return { name: r.name, driver: r.driver, nodes, dynamic: r.dynamic === true };
}
