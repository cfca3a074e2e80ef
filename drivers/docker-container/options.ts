// The docker-container driver's options (`--driver-opt`), validated and turned into the engine
// container's settings.
import { type DriverOption, DriverOptionError, optionValidators, parseBooleanOption } from "../driver.js";

export const DOCKER_CONTAINER_OPTIONS: readonly DriverOption[] = [
  {
    key: "image",
    description: "engine image to run (default: built from this Kiln)",
    validate: optionValidators.nonEmpty,
  },
  {
    key: "network",
    description: "network mode of the engine container (e.g. host)",
    validate: optionValidators.nonEmpty,
  },
  { key: "cgroup-parent", description: "parent cgroup of the engine container" },
  { key: "memory", description: "memory limit (e.g. 2g)", validate: (v, k) => void parseBytes(v, k) },
  {
    key: "memory-swap",
    description: "memory plus swap limit, or -1 for unlimited swap",
    validate: (v, k) => void parseSwap(v, k),
  },
  {
    key: "cpu-quota",
    description: "CPU CFS quota (microseconds per period)",
    validate: optionValidators.integer,
  },
  { key: "cpu-period", description: "CPU CFS period (microseconds)", validate: optionValidators.integer },
  { key: "cpu-shares", description: "relative CPU weight", validate: optionValidators.integer },
  { key: "cpuset-cpus", description: "CPUs the engine may use (e.g. 0-3,5)", validate: validateCpuset },
  { key: "cpuset-mems", description: "memory nodes the engine may use", validate: validateCpuset },
  { key: "env.", description: "environment variable of the engine (env.NAME=value)" },
  {
    key: "restart-policy",
    description: "no, always, unless-stopped (default) or on-failure[:N]",
    validate: (v, k) => void parseRestartPolicy(v, k),
  },
  {
    key: "default-load",
    description: "load images into Docker when a build names no output",
    validate: optionValidators.boolean,
  },
];

export interface ContainerSettings {
  readonly image?: string;
  readonly networkMode?: string;
  readonly cgroupParent?: string;
  readonly memory?: number;
  readonly memorySwap?: number;
  readonly cpuQuota?: number;
  readonly cpuPeriod?: number;
  readonly cpuShares?: number;
  readonly cpusetCpus?: string;
  readonly cpusetMems?: string;
  readonly env: readonly string[];
  readonly restartPolicy: { readonly Name: string; readonly MaximumRetryCount?: number };
  readonly defaultLoad: boolean;
}

/** The container's settings from validated options. */
export function containerSettings(opts: Readonly<Record<string, string>>): ContainerSettings {
  const int = (k: string) => (opts[k] !== undefined ? Number.parseInt(opts[k]!, 10) : undefined);
  return {
    image: opts.image,
    networkMode: opts.network,
    cgroupParent: opts["cgroup-parent"],
    memory: opts.memory !== undefined ? parseBytes(opts.memory, "memory") : undefined,
    memorySwap: opts["memory-swap"] !== undefined ? parseSwap(opts["memory-swap"], "memory-swap") : undefined,
    cpuQuota: int("cpu-quota"),
    cpuPeriod: int("cpu-period"),
    cpuShares: int("cpu-shares"),
    cpusetCpus: opts["cpuset-cpus"],
    cpusetMems: opts["cpuset-mems"],
    env: Object.entries(opts)
      .filter(([k]) => k.startsWith("env."))
      .map(([k, v]) => `${k.slice(4)}=${v}`),
    restartPolicy: parseRestartPolicy(opts["restart-policy"] ?? "unless-stopped", "restart-policy"),
    defaultLoad: parseBooleanOption(opts["default-load"]),
  };
}

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  p: 1024 ** 5,
};

/** Sizes as the Docker CLI reads them (`512m`, `2g`, `1.5GiB`): binary units. */
export function parseBytes(value: string, key: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtpb]?)(?:i?b)?$/i.exec(value.trim());
  if (!m)
    throw new DriverOptionError(
      `invalid value ${JSON.stringify(value)} for driver option ${key}: expected a size such as 512m or 2g`,
    );
  return Math.round(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
}

function parseSwap(value: string, key: string): number {
  return value.trim() === "-1" ? -1 : parseBytes(value, key);
}

function validateCpuset(value: string, key: string): void {
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(value)) {
    throw new DriverOptionError(
      `invalid value ${JSON.stringify(value)} for driver option ${key}: expected a list such as 0-3,5`,
    );
  }
}

export function parseRestartPolicy(value: string, key: string): { Name: string; MaximumRetryCount?: number } {
  const m = /^(no|always|unless-stopped|on-failure)(?::(\d+))?$/.exec(value);
  if (!m || (m[2] !== undefined && m[1] !== "on-failure")) {
    throw new DriverOptionError(
      `invalid value ${JSON.stringify(value)} for driver option ${key}: expected no, always, unless-stopped or on-failure[:N]`,
    );
  }
  return m[2] !== undefined ? { Name: m[1]!, MaximumRetryCount: Number(m[2]) } : { Name: m[1]! };
}
