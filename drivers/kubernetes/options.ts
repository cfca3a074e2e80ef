// The kubernetes driver's options (`--driver-opt`), named and checked as Buildx's kubernetes driver
// names and checks them, and turned into the settings of the node's Deployment and its client.
import { type DriverOption, DriverOptionError, optionValidators, parseBooleanOption } from "../driver.js";
import type { ResourceList, ResourceName, Toleration } from "./kube-objects.js";

export type LoadBalance = "sticky" | "random";

export interface KubernetesSettings {
  /** The namespace of the Deployment; unset means the kubeconfig context's. */
  readonly namespace?: string;
  /** The engine image; unset means the one built from this Kiln on the local Docker daemon. */
  readonly image?: string;
  readonly replicas: number;
  readonly requests: ResourceList;
  readonly limits: ResourceList;
  readonly nodeSelector: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly labels: Readonly<Record<string, string>>;
  readonly tolerations: readonly Toleration[];
  readonly serviceAccount?: string;
  readonly schedulerName?: string;
  readonly loadBalance: LoadBalance;
  readonly defaultLoad: boolean;
  /** How long bootstrap waits for the pods to be ready. */
  readonly timeoutMs: number;
  readonly env: readonly { readonly name: string; readonly value: string }[];
}

const RESOURCE_NAMES: readonly ResourceName[] = ["cpu", "memory", "ephemeral-storage"];
/** Buildx's default wait for pods: 120s. */
export const DEFAULT_TIMEOUT_MS = 120_000;

function invalid(key: string, value: string, expected: string): DriverOptionError {
  return new DriverOptionError(
    `invalid value ${JSON.stringify(value)} for driver option ${key}: expected ${expected}`,
  );
}

/** A Kubernetes resource quantity (`100m`, `2`, `500Mi`, `4G`, `1e3`). */
const QUANTITY = /^[+]?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$/;
/** A DNS-1123 label: what Kubernetes accepts as a namespace name. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** A label or annotation key: an optional DNS-subdomain prefix and a name. */
const QUALIFIED_KEY =
  /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

function validateQuantity(value: string, key: string): void {
  if (!QUANTITY.test(value)) throw invalid(key, value, "a Kubernetes quantity such as 500m, 2, 512Mi or 4G");
}

/** `k=v,k=v` lists (nodeselector, annotations, labels); --driver-opt's CSV quoting has already been undone. */
export function parseKeyValues(value: string, key: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const field of value.split(",")) {
    if (field.trim() === "") continue;
    const eq = field.indexOf("=");
    const k = eq > 0 ? field.slice(0, eq).trim() : "";
    if (!QUALIFIED_KEY.test(k)) throw invalid(key, value, "a list of key=value pairs such as a=b,c=d");
    out[k] = field.slice(eq + 1);
  }
  return out;
}

const TOLERATION_OPERATORS = ["Exists", "Equal"] as const;
const TOLERATION_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"] as const;

/** `key=foo,value=bar;key=foo2,operator=Exists;…`: one toleration per `;`-separated entry. */
export function parseTolerations(value: string, key = "tolerations"): Toleration[] {
  const out: Toleration[] = [];
  for (const entry of value.split(";")) {
    if (entry.trim() === "") continue;
    const t: Toleration = {};
    for (const field of entry.split(",")) {
      const eq = field.indexOf("=");
      const name = eq > 0 ? field.slice(0, eq).trim() : field.trim();
      const v = eq > 0 ? field.slice(eq + 1).trim() : "";
      switch (name) {
        case "key":
          t.key = v;
          break;
        case "value":
          t.value = v;
          break;
        case "operator": {
          const op = TOLERATION_OPERATORS.find((o) => o.toLowerCase() === v.toLowerCase());
          if (!op) throw invalid(key, value, `operator Exists or Equal, not ${JSON.stringify(v)}`);
          t.operator = op;
          break;
        }
        case "effect": {
          const effect = TOLERATION_EFFECTS.find((e) => e.toLowerCase() === v.toLowerCase());
          if (!effect)
            throw invalid(
              key,
              value,
              `effect NoSchedule, PreferNoSchedule or NoExecute, not ${JSON.stringify(v)}`,
            );
          t.effect = effect;
          break;
        }
        case "tolerationSeconds":
          if (!/^\d+$/.test(v)) throw invalid(key, value, "tolerationSeconds as a whole number of seconds");
          t.tolerationSeconds = Number(v);
          break;
        default:
          throw invalid(
            key,
            value,
            `toleration fields key, operator, value, effect, tolerationSeconds, not ${JSON.stringify(name)}`,
          );
      }
    }
    out.push(t);
  }
  return out;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's duration syntax, as Buildx reads `timeout` (`120s`, `2m`, `1m30s`, `500ms`). */
export function parseDuration(value: string, key = "timeout"): number {
  const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== value)
    throw invalid(key, value, "a duration such as 120s, 2m or 1m30s");
  return parts.reduce((ms, p) => ms + Number(p[1]) * DURATION_UNITS[p[2]!]!, 0);
}

function validateReplicas(value: string, key: string): void {
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw invalid(key, value, "a whole number of pods, at least 1");
}

export const KUBERNETES_OPTIONS: readonly DriverOption[] = [
  {
    key: "image",
    description: "engine image the pods run (default: built from this Kiln on the local Docker daemon)",
    validate: optionValidators.nonEmpty,
  },
  {
    key: "namespace",
    description: "namespace of the Deployment (default: the kubeconfig context's)",
    validate: (v, k) => {
      if (!DNS_LABEL.test(v)) throw invalid(k, v, "a namespace name (lower-case letters, digits, -)");
    },
  },
  { key: "replicas", description: "number of engine pods (default 1)", validate: validateReplicas },
  ...(["requests", "limits"] as const).flatMap((kind) =>
    RESOURCE_NAMES.map((r) => ({
      key: `${kind}.${r}`,
      description: `${kind === "requests" ? "requested" : "limit of"} ${r} per pod (Kubernetes quantity)`,
      validate: validateQuantity,
    })),
  ),
  {
    key: "nodeselector",
    description: "node labels the pods must run on (k=v,k=v)",
    validate: (v, k) => void parseKeyValues(v, k),
  },
  {
    key: "annotations",
    description: "extra annotations of the Deployment and pods (k=v,k=v)",
    validate: (v, k) => void parseKeyValues(v, k),
  },
  {
    key: "labels",
    description: "extra labels of the Deployment and pods (k=v,k=v)",
    validate: (v, k) => void parseKeyValues(v, k),
  },
  {
    key: "tolerations",
    description: "taints the pods tolerate (key=,operator=,value=,effect=,tolerationSeconds=; separated)",
    validate: (v, k) => void parseTolerations(v, k),
  },
  { key: "serviceaccount", description: "service account of the pods", validate: optionValidators.nonEmpty },
  { key: "schedulername", description: "scheduler of the pods", validate: optionValidators.nonEmpty },
  {
    key: "loadbalance",
    description: "which pod serves a client: sticky (by the client's directory, default) or random",
    validate: (v, k) => {
      if (v !== "sticky" && v !== "random") throw invalid(k, v, "sticky or random");
    },
  },
  {
    key: "timeout",
    description: "how long bootstrap waits for the pods to be ready (default 120s)",
    validate: (v, k) => void parseDuration(v, k),
  },
  { key: "env.", description: "environment variable of the engine (env.NAME=value)" },
  {
    key: "default-load",
    description: "load images into Docker when a build names no output",
    validate: optionValidators.boolean,
  },
];

function resources(opts: Readonly<Record<string, string>>, kind: "requests" | "limits"): ResourceList {
  const out: ResourceList = {};
  for (const r of RESOURCE_NAMES) {
    const v = opts[`${kind}.${r}`];
    if (v !== undefined) out[r] = v;
  }
  return out;
}

/** The settings from validated options. */
export function kubernetesSettings(opts: Readonly<Record<string, string>>): KubernetesSettings {
  return {
    namespace: opts.namespace,
    image: opts.image,
    replicas: opts.replicas !== undefined ? Number(opts.replicas) : 1,
    requests: resources(opts, "requests"),
    limits: resources(opts, "limits"),
    nodeSelector: opts.nodeselector ? parseKeyValues(opts.nodeselector, "nodeselector") : {},
    annotations: opts.annotations ? parseKeyValues(opts.annotations, "annotations") : {},
    labels: opts.labels ? parseKeyValues(opts.labels, "labels") : {},
    tolerations: opts.tolerations ? parseTolerations(opts.tolerations) : [],
    serviceAccount: opts.serviceaccount,
    schedulerName: opts.schedulername,
    loadBalance: opts.loadbalance === "random" ? "random" : "sticky",
    defaultLoad: parseBooleanOption(opts["default-load"]),
    timeoutMs: opts.timeout !== undefined ? parseDuration(opts.timeout) : DEFAULT_TIMEOUT_MS,
    env: Object.entries(opts)
      .filter(([k]) => k.startsWith("env."))
      .map(([k, value]) => ({ name: k.slice(4), value })),
  };
}
