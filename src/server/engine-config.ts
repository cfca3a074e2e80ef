// kilnd's configuration file (`kilnd --config`, what `kiln create --config` installs in a node):
// BuildKit's buildkitd.toml keys that Kiln's engine acts on — registry mirrors and plain-HTTP or
// unverified registries, the garbage-collection policy, and the entitlements builds may ask for.
// Keys Kiln does not act on are named in warnings rather than silently dropped.
import { readFile } from "node:fs/promises";
import { parse as parseToml, TomlError } from "smol-toml";
import { type GcRule, type GcSpaceConfig, parseDiskSpace, parseDurationMs } from "../cache/gc-policy.js";
import type { Entitlement } from "../engine/entitlements.js";

export interface EngineConfig {
  /** Registry host → mirror hosts tried, in order, before it for pulls. */
  readonly registryMirrors: Readonly<Record<string, readonly string[]>>;
  /** Registries spoken to over plain HTTP (`http = true`) or without verifying TLS (`insecure = true`). */
  readonly insecureRegistries: readonly string[];
  readonly allowedEntitlements: readonly Entitlement[];
  /** The collector's rules; absent: BuildKit's default policy (with `gcSpace`'s limits). */
  readonly gcPolicy?: readonly GcRule[];
  readonly gcSpace?: GcSpaceConfig;
  /** Whether the background collector runs (`[worker.oci] gc`, default true). */
  readonly gc: boolean;
  /** Keys present in the file that Kiln ignores. */
  readonly ignored: readonly string[];
}

export const EMPTY_ENGINE_CONFIG: EngineConfig = {
  registryMirrors: {},
  insecureRegistries: [],
  allowedEntitlements: [],
  gc: true,
  ignored: [],
};

export class EngineConfigError extends Error {
  override name = "EngineConfigError";
}

const ENTITLEMENTS: readonly Entitlement[] = ["network.host", "security.insecure"];

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** Reads and checks the file at `path`; errors name the file and the key. */
export async function loadEngineConfig(path: string): Promise<EngineConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new EngineConfigError(`cannot read the engine config ${path}: ${(err as Error).message}`);
  }
  return parseEngineConfig(text, path);
}

export function parseEngineConfig(text: string, source = "kilnd.toml"): EngineConfig {
  let doc: Table;
  try {
    doc = parseToml(text) as Table;
  } catch (err) {
    const where = err instanceof TomlError ? ` (line ${err.line}, column ${err.column})` : "";
    throw new EngineConfigError(
      `${source}${where}: not valid TOML: ${(err as Error).message.split("\n")[0]}`,
    );
  }
  const fail = (key: string, what: string): never => {
    throw new EngineConfigError(`${source}: ${key}: ${what}`);
  };
  const ignored: string[] = [];
  const stringList = (v: unknown, key: string): string[] => {
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string"))
      return fail(key, "expected a list of strings");
    return v as string[];
  };

  const mirrors: Record<string, string[]> = {};
  const insecure: string[] = [];
  const registries = doc.registry ?? {};
  if (!isTable(registries)) fail("registry", 'expected tables such as [registry."docker.io"]');
  for (const [host, raw] of Object.entries(registries as Table)) {
    const key = `registry."${host}"`;
    if (!isTable(raw)) fail(key, "expected a table");
    for (const [k, v] of Object.entries(raw as Table)) {
      if (k === "mirrors") {
        mirrors[host] = stringList(v, `${key}.mirrors`).map((m) =>
          m.replace(/^https?:\/\//, "").replace(/\/+$/, ""),
        );
      } else if (k === "http" || k === "insecure") {
        if (typeof v !== "boolean") fail(`${key}.${k}`, "expected true or false");
        if (v && !insecure.includes(host)) insecure.push(host);
      } else ignored.push(`${key}.${k}`);
    }
  }

  let allowed: Entitlement[] = [];
  if (doc["insecure-entitlements"] !== undefined) {
    const list = stringList(doc["insecure-entitlements"], "insecure-entitlements");
    for (const e of list)
      if (!ENTITLEMENTS.includes(e as Entitlement))
        fail(
          "insecure-entitlements",
          `unknown entitlement ${JSON.stringify(e)}: use ${ENTITLEMENTS.join(" or ")}`,
        );
    allowed = list as Entitlement[];
  }

  let gc = true;
  let gcPolicy: GcRule[] | undefined;
  let gcSpace: GcSpaceConfig | undefined;
  const worker = doc.worker;
  if (worker !== undefined && !isTable(worker)) fail("worker", "expected a table");
  for (const [name, raw] of Object.entries((worker ?? {}) as Table)) {
    if (name !== "oci") {
      ignored.push(`worker.${name}`);
      continue;
    }
    if (!isTable(raw)) fail("worker.oci", "expected a table");
    for (const [k, v] of Object.entries(raw as Table)) {
      const key = `worker.oci.${k}`;
      switch (k) {
        case "gc":
          if (typeof v !== "boolean") fail(key, "expected true or false");
          gc = v as boolean;
          break;
        case "gckeepstorage":
        case "reservedSpace":
        case "maxUsedSpace":
        case "minFreeSpace": {
          const space = diskSpace(v, key, fail);
          const field = k === "gckeepstorage" ? "maxUsedSpace" : k;
          gcSpace = { ...gcSpace, [field]: space };
          break;
        }
        case "gcpolicy":
          if (!Array.isArray(v)) fail(key, "expected [[worker.oci.gcpolicy]] tables");
          gcPolicy = (v as unknown[]).map((rule, i) => gcRule(rule, `${key}[${i}]`, fail, stringList));
          break;
        default:
          ignored.push(key);
      }
    }
  }
  for (const k of Object.keys(doc))
    if (k !== "registry" && k !== "insecure-entitlements" && k !== "worker") ignored.push(k);

  return {
    registryMirrors: mirrors,
    insecureRegistries: insecure,
    allowedEntitlements: allowed,
    ...(gcPolicy ? { gcPolicy } : {}),
    ...(gcSpace ? { gcSpace } : {}),
    gc,
    ignored,
  };
}

/** `10GB`, `20%`, or a number (megabytes, as buildkitd's gckeepstorage). */
function diskSpace(v: unknown, key: string, fail: (key: string, what: string) => never) {
  if (typeof v === "number") return { bytes: v * 1e6 };
  if (typeof v !== "string") return fail(key, 'expected a size such as "10GB" or "20%"');
  try {
    return parseDiskSpace(v);
  } catch (err) {
    return fail(key, (err as Error).message);
  }
}

function gcRule(
  raw: unknown,
  key: string,
  fail: (key: string, what: string) => never,
  stringList: (v: unknown, key: string) => string[],
): GcRule {
  if (!isTable(raw)) return fail(key, "expected a table");
  let rule: GcRule = {};
  for (const [k, v] of Object.entries(raw)) {
    switch (k) {
      case "all":
        if (typeof v !== "boolean") fail(`${key}.all`, "expected true or false");
        rule = { ...rule, all: v as boolean };
        break;
      case "filters":
        rule = { ...rule, filters: stringList(v, `${key}.filters`) };
        break;
      case "keepDuration": {
        // buildkitd takes a duration string ("48h") or seconds.
        const text = typeof v === "number" ? String(v) : v;
        if (typeof text !== "string") fail(`${key}.keepDuration`, 'expected a duration such as "48h"');
        try {
          rule = { ...rule, keepDurationMs: parseDurationMs(text as string) };
        } catch (err) {
          fail(`${key}.keepDuration`, (err as Error).message);
        }
        break;
      }
      case "keepBytes":
      case "maxUsedSpace":
        rule = { ...rule, maxUsedSpace: diskSpace(v, `${key}.${k}`, fail) };
        break;
      case "reservedSpace":
        rule = { ...rule, reservedSpace: diskSpace(v, `${key}.${k}`, fail) };
        break;
      case "minFreeSpace":
        rule = { ...rule, minFreeSpace: diskSpace(v, `${key}.${k}`, fail) };
        break;
      default:
        fail(
          `${key}.${k}`,
          "unknown key: use all, filters, keepDuration, keepBytes, reservedSpace, maxUsedSpace or minFreeSpace",
        );
    }
  }
  return rule;
}
