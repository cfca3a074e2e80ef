// The Dockerfile frontend as the engine runs it: one conversion per target platform, or a report
// for `--call=check|outline|targets`.
import type { BuildRequest, NamedContext } from "../client/build-request.js";
import { checkDockerfileReport } from "../frontend/dockerfile/checks/index.js";
import type { Warning } from "../frontend/dockerfile/checks/linter.js";
import { convertDockerfile, listTargets, outline } from "../frontend/dockerfile/convert/index.js";
import type {
  ConvertOptions,
  NamedContextSpec,
  ResolveImageFn,
} from "../frontend/dockerfile/convert/types.js";
import type { State } from "../llb/builder.js";
import type { Definition } from "../llb/definition.js";
import type { Platform } from "../oci/platform.js";
import type { ImageConfig } from "../oci/spec.js";
import { CONTEXT_LOCAL_NAME, namedContextLocalName } from "../session/types.js";
import { isGitContextRequest, loadGitContext, type ReadSolvedFiles } from "./context-git.js";
import type { BuildOutcome } from "./types.js";

export interface PlatformBuild {
  readonly platform: Platform;
  readonly definition: Definition;
  readonly imageConfig: ImageConfig;
}

export type FrontendResult =
  | { readonly kind: "report"; readonly outcome: BuildOutcome }
  | {
      readonly kind: "builds";
      readonly builds: readonly PlatformBuild[];
      readonly warnings: readonly string[];
      readonly epoch?: number;
      /** The Dockerfile built, for errors that quote its lines. */
      readonly dockerfile: { readonly name: string; readonly text: string };
    };

export interface FrontendEnv {
  readonly resolveImage: ResolveImageFn;
  readonly buildPlatform: Platform;
  /** Reads files of a solved state: how a git context's Dockerfile is read from its checkout. */
  readonly readSolved?: ReadSolvedFiles;
}

/** What the Dockerfile is built with: its text, and the context (the client's directory or a checkout). */
interface MainContext {
  readonly dockerfile: { readonly name: string; readonly text: string };
  readonly dockerignore?: readonly string[];
  /** Set when the context is not the session's `context` directory. */
  readonly state?: State;
}

async function mainContext(req: BuildRequest, env: FrontendEnv): Promise<MainContext> {
  if (isGitContextRequest(req)) {
    if (!env.readSolved)
      throw new Error("this engine cannot fetch git contexts: it has no solver to read them");
    return loadGitContext(req, env.readSolved);
  }
  const text = req.dockerfileText;
  if (text === undefined) throw new Error("the build request carries no Dockerfile");
  return { dockerfile: { name: req.dockerfileName ?? "Dockerfile", text }, dockerignore: req.dockerignore };
}

function namedContexts(req: BuildRequest): Record<string, NamedContextSpec> {
  const out: Record<string, NamedContextSpec> = {};
  for (const [name, ctx] of Object.entries(req.buildContexts) as [string, NamedContext][]) {
    switch (ctx.kind) {
      case "local":
        out[name] = { kind: "local", name: namedContextLocalName(name) };
        break;
      case "image":
        out[name] = { kind: "image", ref: ctx.ref };
        break;
      case "oci-layout":
        out[name] = { kind: "oci-layout", path: ctx.path, ref: ctx.ref };
        break;
      case "url":
        out[name] = { kind: "url", url: ctx.url };
        break;
      case "target":
        out[name] = { kind: "target", target: ctx.target };
        break;
    }
  }
  return out;
}

/** BuildKit's warning text: `Rule: message (file:line)`. */
export function formatWarning(w: Warning): string {
  return `${w.rule}: ${w.message} (${w.location.file}:${w.location.startLine})`;
}

/** Buildx's `--call=check` report: a summary, then each finding with its rule, link and place. */
export function formatCheckReport(warnings: readonly Warning[], lines: readonly string[]): string {
  const n = warnings.length;
  let out =
    n === 0
      ? "Check complete, no warnings found.\n"
      : `Check complete, ${n} warning${n === 1 ? " has" : "s have"} been found!\n`;
  for (const w of warnings) {
    out += `\nWARNING: ${w.rule} - ${w.url}\n${w.message}\n${w.location.file}:${w.location.startLine}\n--------------------\n`;
    const from = Math.max(1, w.location.startLine - 2);
    const to = Math.min(lines.length, w.location.endLine + 2);
    for (let i = from; i <= to; i++) {
      const mark = i >= w.location.startLine && i <= w.location.endLine ? ">>>" : "   ";
      out += ` ${mark} ${String(i).padStart(2)} | ${lines[i - 1] ?? ""}\n`;
    }
    out += "--------------------\n";
  }
  return out;
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return (
    rows
      .map((r) =>
        r
          .map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]! + 3)))
          .join("")
          .trimEnd(),
      )
      .join("\n") + "\n"
  );
}

async function report(req: BuildRequest, text: string, opts: ConvertOptions): Promise<BuildOutcome> {
  switch (req.call) {
    case "targets": {
      const targets = listTargets(text, { filename: opts.filename });
      const rows = [
        ["TARGET", "DESCRIPTION"],
        ...targets.map((t) => [`${t.name}${t.default ? " (default)" : ""}`, t.description]),
      ];
      return { warnings: [], metadata: {}, report: table(rows) };
    }
    case "outline": {
      const o = await outline(text, opts);
      let out = `TARGET:      ${o.name || "(default)"}\n`;
      if (o.description) out += `DESCRIPTION: ${o.description}\n`;
      if (o.args.length)
        out += `\n${table([["BUILD ARG", "VALUE", "DESCRIPTION"], ...o.args.map((a) => [a.name, a.value ?? "<null>", a.description ?? ""])])}`;
      if (o.secrets.length)
        out += `\n${table([["SECRET", "REQUIRED"], ...o.secrets.map((x) => [x.name, x.required ? "true" : ""])])}`;
      if (o.ssh.length)
        out += `\n${table([["SSH", "REQUIRED"], ...o.ssh.map((x) => [x.name, x.required ? "true" : ""])])}`;
      return { warnings: [], metadata: {}, report: out };
    }
    default: {
      const r = await checkDockerfileReport(text, opts);
      const lines = text.split("\n");
      const out = formatCheckReport(r.warnings, lines);
      const failed = r.error
        ? r.error.format()
        : r.warnings.length > 0
          ? `${r.warnings.length} build check warning(s) found`
          : undefined;
      return { warnings: [], metadata: {}, report: out, failed };
    }
  }
}

function withoutTargets(contexts: Record<string, NamedContextSpec>): Record<string, NamedContextSpec> {
  return Object.fromEntries(Object.entries(contexts).filter(([, c]) => c.kind !== "target"));
}

export async function runDockerfileFrontend(req: BuildRequest, env: FrontendEnv): Promise<FrontendResult> {
  const main = await mainContext(req, env);
  const text = main.dockerfile.text;
  const platforms = req.platforms.length ? req.platforms : [env.buildPlatform];
  const multi = platforms.length > 1;
  const base = (platform: Platform): ConvertOptions => ({
    filename: main.dockerfile.name,
    target: req.target,
    buildArgs: req.buildArgs,
    buildPlatform: env.buildPlatform,
    targetPlatform: platform,
    multiPlatform: multi,
    labels: req.labels,
    namedContexts: namedContexts(req),
    contextName: CONTEXT_LOCAL_NAME,
    mainContext: main.state,
    dockerignore: main.dockerignore,
    noCacheStages: req.noCacheFilter.length ? req.noCacheFilter : undefined,
    resolveImage: env.resolveImage,
    extraHosts: req.addHosts,
    shmSize: req.shmSize,
    ulimits: req.ulimits,
    cgroupParent: req.cgroupParent,
    network: req.network,
  });
  // `--build-context NAME=target:STAGE`: that stage of the same Dockerfile stands in for NAME.
  const options = async (platform: Platform): Promise<ConvertOptions> => {
    const o = base(platform);
    const contexts = { ...o.namedContexts };
    for (const [name, ctx] of Object.entries(contexts)) {
      if (ctx.kind !== "target" || ctx.state) continue;
      const t = await convertDockerfile(text, {
        ...o,
        target: ctx.target,
        namedContexts: withoutTargets(contexts),
      });
      contexts[name] = { kind: "target", target: ctx.target, state: t.state, config: t.imageConfig };
    }
    return { ...o, namedContexts: contexts };
  };
  if (req.call !== "build")
    return { kind: "report", outcome: await report(req, text, await options(platforms[0]!)) };
  const builds = await Promise.all(
    platforms.map(async (platform) => ({
      platform,
      result: await convertDockerfile(text, await options(platform)),
    })),
  );
  const warnings = [...new Set(builds.flatMap((b) => b.result.warnings.map(formatWarning)))];
  return {
    kind: "builds",
    builds: builds.map((b) => ({
      platform: b.platform,
      definition: b.result.definition,
      imageConfig: b.result.imageConfig,
    })),
    warnings,
    epoch: builds[0]?.result.epoch,
    dockerfile: main.dockerfile,
  };
}
