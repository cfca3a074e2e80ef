// Turns `kiln build`'s raw flags into a typed BuildRequest, with Buildx's defaults and shorthands.
import { existsSync, readFileSync } from "node:fs";
import type {
  BuildRequest,
  CacheSpec,
  CallKind,
  NamedContext,
  OutputSpec,
  ProgressMode,
  SecretSpec,
  SshSpec,
} from "../../src/client/build-request.js";
import { classifyContext, isGitSshContext, STDIN_CONFLICT } from "../../src/client/context-source.js";
import { type Platform, parsePlatform } from "../../src/oci/platform.js";
import { UsageError } from "../errors.js";
import { parseKeyValues } from "./csv.js";

export interface RawBuildFlags {
  file?: string;
  tag: string[];
  buildArg: string[];
  buildContext: string[];
  target?: string;
  platform: string[];
  output: string[];
  push?: boolean;
  load?: boolean;
  cache?: boolean; // commander's --no-cache sets cache=false
  noCacheFilter: string[];
  pull?: boolean;
  label: string[];
  network?: string;
  addHost: string[];
  allow: string[];
  secret: string[];
  ssh: string[];
  cacheFrom: string[];
  cacheTo: string[];
  progress?: string;
  quiet?: boolean;
  metadataFile?: string;
  iidfile?: string;
  call?: string;
  check?: boolean;
  annotation: string[];
  shmSize?: string;
  ulimit: string[];
  cgroupParent?: string;
}

/** Every repeatable flag empty, every other unset: what an empty command line gives. */
export function emptyRawFlags(): RawBuildFlags {
  return {
    tag: [],
    buildArg: [],
    buildContext: [],
    platform: [],
    output: [],
    noCacheFilter: [],
    label: [],
    addHost: [],
    allow: [],
    secret: [],
    ssh: [],
    cacheFrom: [],
    cacheTo: [],
    annotation: [],
    ulimit: [],
  };
}

export interface ClientOptions {
  readonly progress: ProgressMode;
  readonly quiet: boolean;
  readonly metadataFile?: string;
  readonly iidfile?: string;
}

const OUTPUT_TYPES = ["local", "tar", "oci", "docker", "image", "registry"] as const;

export function parseOutput(value: string): OutputSpec {
  if (value === "-") return { type: "tar", dest: "-", attrs: {} };
  if (!value.includes("=")) return { type: "local", dest: value, attrs: {} };
  const kv = parseKeyValues("--output", value);
  const type = kv.type ?? "local";
  if (!(OUTPUT_TYPES as readonly string[]).includes(type)) {
    throw new UsageError(
      `unknown output type ${JSON.stringify(type)}: expected one of ${OUTPUT_TYPES.join(", ")}`,
    );
  }
  const names = (kv.name ?? "").split(",").filter(Boolean);
  switch (type) {
    case "local":
    case "tar": {
      if (!kv.dest) throw new UsageError(`--output type=${type} needs dest=PATH`);
      return { type, dest: kv.dest, attrs: kv };
    }
    case "oci":
    case "docker":
      return { type, dest: kv.dest, tar: kv.tar !== "false", names, attrs: kv };
    default:
      return { type: "image", names, push: type === "registry" || kv.push === "true", attrs: kv };
  }
}

export function parseCacheSpec(flag: string, value: string): CacheSpec {
  if (!value.includes("=")) return { type: "registry", attrs: { ref: value } };
  const kv = parseKeyValues(flag, value);
  const type = kv.type ?? "registry";
  return { type, attrs: kv };
}

export function parseSecret(value: string, env: NodeJS.ProcessEnv): SecretSpec {
  const kv = parseKeyValues("--secret", value);
  const id = kv.id;
  if (!id) throw new UsageError(`--secret ${JSON.stringify(value)}: id=ID is required`);
  const src = kv.src ?? kv.source;
  let type = kv.type;
  if (!type)
    type =
      !src && kv.env === undefined && env[id] !== undefined ? "env" : kv.env !== undefined ? "env" : "file";
  if (type === "env") return { id, source: { kind: "env", name: kv.env ?? id } };
  if (type !== "file") throw new UsageError(`--secret type ${JSON.stringify(type)}: expected file or env`);
  return { id, source: { kind: "file", path: src ?? id } };
}

export function parseSsh(value: string): SshSpec {
  const eq = value.indexOf("=");
  if (eq < 0) return { id: value || "default", paths: [] };
  return {
    id: value.slice(0, eq),
    paths: value
      .slice(eq + 1)
      .split(",")
      .filter(Boolean),
  };
}

export function parseBuildContext(value: string): [string, NamedContext] {
  const eq = value.indexOf("=");
  if (eq <= 0) throw new UsageError(`--build-context ${JSON.stringify(value)}: expected NAME=VALUE`);
  const name = value.slice(0, eq);
  const v = value.slice(eq + 1);
  if (v.startsWith("docker-image://"))
    return [name, { kind: "image", ref: v.slice("docker-image://".length) }];
  if (v.startsWith("oci-layout://")) {
    const rest = v.slice("oci-layout://".length);
    const m = /^(.*?)(?:([:@])([^:@/]+(?::[a-f0-9]+)?))?$/.exec(rest)!;
    return [
      name,
      { kind: "oci-layout", path: m[1]!, ref: m[3] ? `${m[2] === "@" ? "@" : ""}${m[3]}` : undefined },
    ];
  }
  if (v.startsWith("target:")) return [name, { kind: "target", target: v.slice("target:".length) }];
  if (/^(https?:\/\/|git@|git:\/\/|ssh:\/\/)/.test(v)) return [name, { kind: "url", url: v }];
  return [name, { kind: "local", path: v }];
}

export function parseBuildArgs(values: readonly string[], env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf("=");
    if (eq < 0) {
      // Buildx takes a bare NAME's value from the environment, and drops it when unset.
      if (env[v] !== undefined) out[v] = env[v]!;
    } else out[v.slice(0, eq)] = v.slice(eq + 1);
  }
  // Buildx passes the client's SOURCE_DATE_EPOCH on as a build argument unless one is given.
  if (env.SOURCE_DATE_EPOCH !== undefined && !Object.hasOwn(out, "SOURCE_DATE_EPOCH"))
    out.SOURCE_DATE_EPOCH = env.SOURCE_DATE_EPOCH;
  return out;
}

export function parsePlatforms(values: readonly string[], env: NodeJS.ProcessEnv): Platform[] {
  const specs = values
    .flatMap((v) => v.split(","))
    .map((s) => s.trim())
    .filter(Boolean);
  if (specs.length === 0 && env.DOCKER_DEFAULT_PLATFORM)
    specs.push(...env.DOCKER_DEFAULT_PLATFORM.split(","));
  try {
    return specs.map(parsePlatform);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** `--shm-size 64m` → bytes, with Docker's units (b, k, m, g; binary multiples). */
export function parseByteSize(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?$/i.exec(value.trim());
  if (!m) throw new UsageError(`invalid size ${JSON.stringify(value)} for ${flag}: e.g. 64m, 1g`);
  const mult = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase()] ?? 1;
  return Math.round(Number(m[1]) * mult);
}

export function parseUlimit(value: string): { name: string; soft: number; hard: number } {
  const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(value);
  if (!m)
    throw new UsageError(
      `invalid --ulimit ${JSON.stringify(value)}: expected name=soft[:hard], e.g. nofile=1024:2048`,
    );
  const soft = Number(m[2]);
  return { name: m[1]!, soft, hard: m[3] !== undefined ? Number(m[3]) : soft };
}

export function parseAddHost(value: string): { host: string; ip: string } {
  const m = /^([^:=]+)[:=](.+)$/.exec(value);
  if (!m) throw new UsageError(`invalid --add-host ${JSON.stringify(value)}: expected host:ip or host=ip`);
  return { host: m[1]!, ip: m[2]! };
}

const ANNOTATION_TYPES = ["index", "index-descriptor", "manifest", "manifest-descriptor"];

/**
 * `--annotation [TYPE[PLATFORM]:]KEY=VALUE` as Buildx reads it, as the exporter attribute it
 * becomes: `annotation.KEY`, `annotation-TYPE.KEY` or `annotation-TYPE[PLATFORM].KEY`.
 */
export function parseAnnotationFlag(value: string): [string, string] {
  const eq = value.indexOf("=");
  if (eq < 0) throw new UsageError(`invalid annotation ${JSON.stringify(value)}, expected key=value`);
  const m = /^(?:([a-z-]+)(?:\[([A-Za-z0-9_/-]+)\])?:)?(\S+)$/.exec(value.slice(0, eq));
  if (!m)
    throw new UsageError(
      `invalid annotation format, expected <type>:<key>=<value>, got ${JSON.stringify(value)}`,
    );
  const [, type, platform, key] = m;
  if (type && !ANNOTATION_TYPES.includes(type))
    throw new UsageError(
      `unknown annotation type ${JSON.stringify(type)}: use ${ANNOTATION_TYPES.join(", ")}`,
    );
  if (platform) {
    try {
      parsePlatform(platform);
    } catch (err) {
      throw new UsageError(
        `invalid platform ${JSON.stringify(platform)} in --annotation: ${(err as Error).message}`,
      );
    }
  }
  let attr = "annotation";
  if (type) attr += `-${type}`;
  if (platform && (type === "manifest" || type === "manifest-descriptor")) attr += `[${platform}]`;
  return [`${attr}.${key}`, value.slice(eq + 1)];
}

/** Applies Buildx's rules for `--push`, `--load`, `-t` and `--annotation` to the list of outputs. */
export function resolveOutputs(raw: RawBuildFlags): OutputSpec[] {
  const annotations = Object.fromEntries((raw.annotation ?? []).map(parseAnnotationFlag));
  let outputs = raw.output.map(parseOutput);
  if (raw.push) {
    let pushed = false;
    outputs = outputs.map((o) => {
      if (o.type === "image") {
        pushed = true;
        return { ...o, push: true };
      }
      return o;
    });
    if (!pushed) outputs.push({ type: "image", names: [], push: true, attrs: {} });
  }
  if (raw.load) outputs.push({ type: "docker", tar: true, names: [], attrs: {} });
  // -t names every image-like output that has no name of its own; --annotation goes to each.
  return outputs.map((o) =>
    o.type === "image" || o.type === "oci" || o.type === "docker"
      ? {
          ...o,
          names: o.names.length === 0 ? [...raw.tag] : o.names,
          attrs: { ...o.attrs, ...annotations },
        }
      : o,
  );
}

export function parseBuildFlags(
  contextPath: string,
  raw: RawBuildFlags,
  env: NodeJS.ProcessEnv,
): { request: BuildRequest; client: ClientOptions } {
  let call: CallKind = "build";
  if (raw.check) call = "check";
  if (raw.call) {
    if (!["build", "check", "outline", "targets"].includes(raw.call))
      throw new UsageError(
        `invalid --call ${JSON.stringify(raw.call)}: expected build, check, outline or targets`,
      );
    call = raw.call as CallKind;
  }
  const progress = (raw.quiet ? "quiet" : (raw.progress ?? env.BUILDKIT_PROGRESS ?? "auto")) as ProgressMode;
  if (!["auto", "tty", "plain", "rawjson", "quiet", "none"].includes(progress)) {
    throw new UsageError(
      `invalid --progress ${JSON.stringify(progress)}: expected auto, tty, plain, rawjson, quiet or none`,
    );
  }
  if (raw.network && !["default", "none", "host"].includes(raw.network)) {
    throw new UsageError(`invalid --network ${JSON.stringify(raw.network)}: expected default, none or host`);
  }
  const context = classifyContext(contextPath);
  if (context.kind === "stdin" && raw.file === "-") throw new UsageError(STDIN_CONFLICT);
  let dockerfileText: string | undefined;
  if (raw.file === "-") dockerfileText = readFileSync(0, "utf8");
  if (context.kind === "directory" && !existsSync(context.path)) {
    throw new UsageError(`unable to prepare context: path ${JSON.stringify(contextPath)} not found`);
  }
  const labels: Record<string, string> = {};
  for (const l of raw.label) {
    const eq = l.indexOf("=");
    labels[eq < 0 ? l : l.slice(0, eq)] = eq < 0 ? "" : l.slice(eq + 1);
  }
  const request: BuildRequest = {
    contextPath,
    dockerfilePath: raw.file === "-" ? undefined : raw.file,
    dockerfileText,
    tags: raw.tag,
    buildArgs: parseBuildArgs(raw.buildArg, env),
    buildContexts: Object.fromEntries(raw.buildContext.map(parseBuildContext)),
    target: raw.target,
    platforms: parsePlatforms(raw.platform, env),
    outputs: resolveOutputs(raw),
    noCache: raw.cache === false,
    noCacheFilter: raw.noCacheFilter.flatMap((v) => v.split(",")).filter(Boolean),
    pull: raw.pull ?? false,
    labels,
    network: raw.network as BuildRequest["network"],
    addHosts: raw.addHost.map(parseAddHost),
    allow: raw.allow.flatMap((v) => v.split(",")).filter(Boolean),
    secrets: raw.secret.map((s) => parseSecret(s, env)),
    // As Buildx: a git context over ssh gets the client's default agent unless --ssh says otherwise.
    ssh:
      raw.ssh.length === 0 && isGitSshContext(contextPath)
        ? [{ id: "default", paths: [] }]
        : raw.ssh.map(parseSsh),
    cacheFrom: raw.cacheFrom.map((v) => parseCacheSpec("--cache-from", v)),
    cacheTo: raw.cacheTo.map((v) => parseCacheSpec("--cache-to", v)),
    call,
    annotations: raw.annotation,
    shmSize: raw.shmSize ? parseByteSize("--shm-size", raw.shmSize) : undefined,
    ulimits: raw.ulimit.map(parseUlimit),
    cgroupParent: raw.cgroupParent,
  };
  return {
    request,
    client: { progress, quiet: raw.quiet ?? false, metadataFile: raw.metadataFile, iidfile: raw.iidfile },
  };
}
