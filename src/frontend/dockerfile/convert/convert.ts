// Dockerfile → LLB (BuildKit's dockerfile2llb): parse, group into stages, scope ARGs, resolve base
// images, find what the target needs, then turn each needed stage's instructions into LLB ops
// and image-config changes. Pure computation: base image configs come from `resolveImage`.
import { posix } from "node:path";
import {
  deferred,
  EnvList,
  http as httpSource,
  image as imageSource,
  local as localSource,
  marshal,
  ociLayout,
  type State,
  scratch,
} from "../../../llb/builder.js";
import { formatImageRef, parseImageRef } from "../../../oci/image-ref.js";
import {
  formatPlatform,
  hostPlatform,
  normalizePlatform,
  type Platform,
  parsePlatform,
} from "../../../oci/platform.js";
import type { ImageConfig } from "../../../oci/spec.js";
import { Linter, parseLintOptions, type Warning } from "../checks/linter.js";
import { type LintRule, Rules, ruleByName } from "../checks/rules.js";
import { parseInstruction, parseInstructions } from "../instructions/parse.js";
import type {
  ArgInstruction,
  DockerfileInstructions,
  SourceLocation,
  Stage,
  StageInstruction,
} from "../instructions/types.js";
import { DockerfileError, sourceText, suggestClosest } from "../parser/errors.js";
import { parseDockerfile } from "../parser/parser.js";
import type { EnvGetter } from "../shell/lex.js";
import { ShellLex } from "../shell/lex.js";
import { type DispatchContext, dispatch } from "./dispatch.js";
import { gitContextState } from "./git-context.js";
import { isGitSource } from "./git-ref.js";
import {
  cloneImage,
  emptyImage,
  envGet,
  fromImageConfig,
  toImageConfig,
  type WorkingImage,
} from "./image-config.js";
import {
  type ArgInfo,
  allReachable,
  type Command,
  DispatchState,
  DispatchStates,
  findCycle,
  OutlineCapture,
} from "./stage-graph.js";
import type { ConvertOptions, ConvertResult, NamedContextSpec, ResolvedImage, StageInfo } from "./types.js";
import { normalizeWorkdir } from "./util.js";

const EMPTY_IMAGE_NAME = "scratch";

/** Everything parsed and set up before stages are dispatched. */
export interface Prepared {
  readonly text: string;
  readonly fileName: string;
  readonly lines: readonly string[];
  readonly instructions: DockerfileInstructions;
  readonly lint: Linter;
  readonly shlex: ShellLex;
  readonly escapeToken: string;
  readonly buildPlatform: Platform;
  readonly targetPlatform: Platform;
  readonly implicitTarget: boolean;
  globalArgs: EnvList;
  readonly outline: OutlineCapture;
}

/** An EnvGetter over an EnvList (the lexer's view of a scope). */
export function envGetter(env: EnvList): EnvGetter {
  return { get: (k) => env.get(k), keys: () => env.keys() };
}

/** An error with the Dockerfile location it belongs to (kept if it has one already). */
export function located(
  e: unknown,
  loc: SourceLocation | undefined,
  p: { fileName: string; lines: readonly string[] },
): DockerfileError {
  if (e instanceof DockerfileError) {
    if (e.line > 0) return e.withContext({ fileName: p.fileName, lines: p.lines });
    if (!loc) return e.withContext({ fileName: p.fileName });
    return e.withContext({ fileName: p.fileName, line: loc.startLine, endLine: loc.endLine, lines: p.lines });
  }
  // Programming errors stay what they are (the fuzz tests look for them).
  if (e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError) throw e;
  const message = e instanceof Error ? e.message : String(e);
  return new DockerfileError({
    message,
    fileName: p.fileName,
    line: loc?.startLine ?? 0,
    endLine: loc?.endLine,
    lineText: loc ? sourceText(p.lines, loc.startLine, loc.endLine) : "",
    cause: e,
  });
}

/** The platform args (BUILDPLATFORM … TARGETSTAGE), build args overriding them. */
function defaultArgs(
  build: Platform,
  target: Platform,
  overrides: Readonly<Record<string, string>>,
  targetStage: string,
): EnvList {
  const pairs: [string, string][] = [
    ["BUILDPLATFORM", formatPlatform(build)],
    ["BUILDOS", build.os],
    ["BUILDOSVERSION", ""],
    ["BUILDARCH", build.architecture],
    ["BUILDVARIANT", build.variant ?? ""],
    ["TARGETPLATFORM", formatPlatform(target)],
    ["TARGETOS", target.os],
    ["TARGETOSVERSION", ""],
    ["TARGETARCH", target.architecture],
    ["TARGETVARIANT", target.variant ?? ""],
    ["TARGETSTAGE", targetStage || "default"],
  ];
  let env = EnvList.empty;
  for (const [k, v] of pairs) env = env.set(k, Object.hasOwn(overrides, k) ? overrides[k]! : v);
  return env;
}

/** The global (pre-FROM) ARGs with build-arg overrides (BuildKit's buildMetaArgs). */
export function buildMetaArgs(
  args: EnvList,
  shlex: ShellLex,
  argCommands: readonly ArgInstruction[],
  buildArgs: Readonly<Record<string, string>> | undefined,
  p: { fileName: string; lines: readonly string[] },
): { args: EnvList; allArgs: Map<string, ArgInfo> } {
  const allArgs = new Map<string, ArgInfo>();
  for (const cmd of argCommands) {
    for (const kp of cmd.args) {
      let value = kp.value;
      let deps = new Set<string>();
      if (buildArgs && Object.hasOwn(buildArgs, kp.key)) {
        value = buildArgs[kp.key]!;
      } else if (value !== undefined) {
        let res: ReturnType<ShellLex["processWordWithMatches"]>;
        try {
          res = shlex.processWordWithMatches(value, envGetter(args));
        } catch (e) {
          throw located(e, cmd.location, p);
        }
        value = res.result;
        deps = new Set(res.matched);
        if (deps.has(kp.key)) {
          deps.delete(kp.key);
          const old = allArgs.get(kp.key);
          if (old) for (const k of old.deps) deps.add(k);
        }
      }
      if (value !== undefined) args = args.set(kp.key, value);
      allArgs.set(kp.key, { key: kp.key, value, description: kp.docComment, deps, location: cmd.location });
    }
  }
  return { args, allArgs };
}

/** Parses the Dockerfile and sets up linting, platforms and global ARGs. */
export function prepare(text: string, opts: ConvertOptions): Prepared {
  const fileName = opts.filename ?? "Dockerfile";
  if (text.length === 0) throw new DockerfileError({ message: "the Dockerfile cannot be empty", fileName });
  const parse = parseDockerfile(text, { fileName });
  let lintConfig = opts.lintConfig;
  if (!lintConfig) {
    try {
      lintConfig = parseLintOptions(parse.directives.check);
    } catch (e) {
      throw new DockerfileError({
        message: `failed to parse check options: ${(e as Error).message}`,
        fileName,
        line: parse.directives.lines.check ?? 0,
        lineText: parse.directives.lines.check ? (parse.lines[parse.directives.lines.check - 1] ?? "") : "",
      });
    }
  }
  const lint = Linter.create(lintConfig, fileName);
  for (const w of parse.warnings) {
    if (w.rule === "NoEmptyContinuation")
      lint.run(Rules.NoEmptyContinuation, w.location, Rules.NoEmptyContinuation.format());
  }
  const instructions = parseInstructions(parse, {
    fileName,
    onLint: (f) => {
      const rule = ruleByName(f.rule);
      if (rule) lint.run(rule, f.location, f.message);
    },
  });
  if (instructions.stages.length === 0)
    throw new DockerfileError({ message: "dockerfile contains no stages to build", fileName });
  const targetPlatform0 = opts.targetPlatform ? normalizePlatform(opts.targetPlatform) : undefined;
  const buildPlatform = normalizePlatform(opts.buildPlatform ?? targetPlatform0 ?? hostPlatform());
  const targetPlatform = targetPlatform0 ?? buildPlatform;
  const targetName = opts.target || instructions.stages[instructions.stages.length - 1]!.name;
  const globalArgs = defaultArgs(buildPlatform, targetPlatform, opts.buildArgs ?? {}, targetName);
  const shlex = new ShellLex(parse.escapeToken);
  return {
    text,
    fileName,
    lines: parse.lines,
    instructions,
    lint,
    shlex,
    escapeToken: parse.escapeToken,
    buildPlatform,
    targetPlatform,
    implicitTarget: !targetPlatform0,
    globalArgs,
    outline: new OutlineCapture(),
  };
}

/** BuildKit's isSelfConsistentCasing + validateCommandCasing (ConsistentInstructionCasing). */
export function validateCommandCasing(stages: readonly Stage[], lint: Linter): void {
  let lower = 0;
  let upper = 0;
  const count = (kw: string) => {
    if (kw === kw.toLowerCase()) lower++;
    else if (kw === kw.toUpperCase()) upper++;
  };
  for (const st of stages) {
    count(st.from.keyword);
    for (const c of st.commands) count(c.keyword);
  }
  const majorityLower = lower > upper;
  const check = (kw: string, loc: SourceLocation) => {
    let correct = "";
    if (majorityLower && kw.toLowerCase() !== kw) correct = "lowercase";
    else if (!majorityLower && kw.toUpperCase() !== kw) correct = "uppercase";
    if (correct)
      lint.run(Rules.ConsistentInstructionCasing, loc, Rules.ConsistentInstructionCasing.format(kw, correct));
  };
  for (const st of stages) {
    check(st.from.keyword, st.from.location);
    for (const c of st.commands) check(c.keyword, c.location);
  }
}

export function validateStageNames(stages: readonly Stage[], lint: Linter): void {
  const seen = new Set<string>();
  for (const st of stages) {
    if (st.name === "") continue;
    if (st.name === "context" || st.name === "scratch")
      lint.run(Rules.ReservedStageName, st.from.location, Rules.ReservedStageName.format(st.name));
    if (seen.has(st.name))
      lint.run(Rules.DuplicateStageName, st.from.location, Rules.DuplicateStageName.format(st.name));
    seen.add(st.name);
  }
}

function isValidImageRef(s: string): boolean {
  try {
    parseImageRef(s);
    return s.trim() === s && s !== "";
  } catch {
    return false;
  }
}

/** BuildKit's TagNameOnly + String: `busybox` → `docker.io/library/busybox:latest`. */
function normalizeRef(ref: string): string {
  return formatImageRef(parseImageRef(ref));
}

const COMMON_IMAGE_NAMES = (() => {
  const out: string[] = [];
  for (const n of ["alpine", "busybox", "centos", "debian", "golang", "ubuntu", "fedora"])
    out.push(n, `docker.io/library${n}`, `${n}:latest`, `docker.io/library${n}:latest`);
  return out;
})();

const PROXY_KEYS: readonly [string, "httpProxy" | "httpsProxy" | "ftpProxy" | "noProxy" | "allProxy"][] = [
  ["http_proxy", "httpProxy"],
  ["https_proxy", "httpsProxy"],
  ["ftp_proxy", "ftpProxy"],
  ["no_proxy", "noProxy"],
  ["all_proxy", "allProxy"],
];

function proxyEnvFromBuildArgs(args: Readonly<Record<string, string>>) {
  const pe: Record<string, string> = {};
  let set = false;
  for (const k of Object.keys(args).sort()) {
    for (const [name, field] of PROXY_KEYS) {
      if (k.toLowerCase() === name) {
        pe[field] = args[k]!;
        set = true;
      }
    }
  }
  return set ? pe : undefined;
}

function platformKey(p: Platform): string {
  return formatPlatform(p);
}

/** Converts a Dockerfile to an LLB definition and the target's image config. */
export async function convertDockerfile(text: string, opts: ConvertOptions = {}): Promise<ConvertResult> {
  const conv = new Converter(prepare(text, opts), opts);
  return conv.run();
}

export class Converter {
  readonly all = new DispatchStates();
  readonly p: Prepared;
  private readonly resolveCache = new Map<string, Promise<ResolvedImage>>();
  /** The main build context: a local source filtered to what the build reads, decided at marshal. */
  readonly buildContext: State;
  private readonly ctxPaths = new Set<string>();
  private epoch?: number;
  private readonly proxyEnv;

  constructor(
    p: Prepared,
    readonly opts: ConvertOptions,
  ) {
    this.p = p;
    this.proxyEnv = proxyEnvFromBuildArgs(opts.buildArgs ?? {});
    const contextName = opts.contextName ?? "context";
    this.buildContext =
      opts.mainContext ??
      deferred(() => {
        const follow = normalizeContextPaths(this.ctxPaths);
        return localSource(contextName, {
          followPaths: follow,
          include: follow,
          exclude: opts.dockerignore,
          sharedKeyHint: contextName,
          description: "[internal] load build context",
        });
      });
  }

  private get loc() {
    return { fileName: this.p.fileName, lines: this.p.lines };
  }

  /** The whole conversion, up to the marshalled definition. */
  async run(): Promise<ConvertResult> {
    const target = await this.toDispatchState();
    const img = target.image;
    const labels = this.opts.labels ?? {};
    if (Object.keys(labels).length) img.config.Labels = { ...(img.config.Labels ?? {}), ...labels };
    const lintErr = this.p.lint.error();
    if (lintErr) throw lintErr;
    if (!this.p.implicitTarget) {
      const tp = this.p.targetPlatform;
      const sameOsArch = tp.os === img.os && tp.architecture === img.architecture;
      img.os = tp.os;
      img.architecture = tp.architecture;
      if (tp.variant || !sameOsArch) img.variant = tp.variant;
    }
    const norm = normalizePlatform({ os: img.os, architecture: img.architecture, variant: img.variant });
    img.architecture = norm.architecture;
    img.os = norm.os;
    if (norm.variant) img.variant = norm.variant;
    else delete img.variant;
    const definition = marshal(target.state, { platform: this.p.targetPlatform });
    const reach = allReachable(target);
    let ignoreCache = target.ignoreCache;
    for (const s of reach) if (s.ignoreCache) ignoreCache = true;
    return {
      definition,
      state: target.state,
      imageConfig: toImageConfig(img),
      baseImageConfig: target.baseImg ? toImageConfig(target.baseImg) : undefined,
      stages: this.stageInfos(reach),
      target: target.stageName || target.name,
      warnings: [...this.p.lint.warnings],
      epoch: this.epoch,
      ignoreCache,
    };
  }

  stageInfos(reach: Set<DispatchState>): StageInfo[] {
    const out: StageInfo[] = [];
    this.p.instructions.stages.forEach((st, index) => {
      const ds = this.all.states.find((s) => s.stage === st);
      if (!ds) return;
      const deps = new Set<string>();
      if (ds.base) deps.add(ds.base.stageName || ds.base.baseName);
      for (const d of ds.deps.keys()) {
        if (d.unregistered && d.baseName === EMPTY_IMAGE_NAME) continue;
        deps.add(d.stageName || d.baseName);
      }
      const last = st.commands[st.commands.length - 1];
      out.push({
        name: st.name || `stage-${index}`,
        index,
        base: ds.baseName,
        platform: ds.platform,
        reachable: reach.has(ds),
        dependsOn: [...deps],
        location: {
          startLine: st.from.location.startLine,
          endLine: last?.location.endLine ?? st.from.location.endLine,
        },
      });
    });
    return out;
  }

  /** BuildKit's toDispatchState: everything but marshalling. */
  async toDispatchState(): Promise<DispatchState> {
    const p = this.p;
    const { stages, metaArgs } = p.instructions;
    validateStageNames(stages, p.lint);
    validateCommandCasing(stages, p.lint);
    this.validateBaseImagesWithDefaultArgs(stages, metaArgs);
    const meta = buildMetaArgs(p.globalArgs, p.shlex, metaArgs, this.opts.buildArgs ?? {}, this.loc);
    p.globalArgs = meta.args;
    for (const [k, v] of meta.allArgs) p.outline.allArgs.set(k, v);
    this.resolveEpoch();
    this.buildDispatchStates(stages);
    const target = this.resolveTarget();
    this.buildStageDependencyGraph();
    const reachable = await this.resolveStages(target);
    this.dispatchStages(reachable, target);
    return target;
  }

  private resolveEpoch(): void {
    const args = this.opts.buildArgs ?? {};
    let v: string | undefined;
    if (Object.hasOwn(args, "SOURCE_DATE_EPOCH")) v = args.SOURCE_DATE_EPOCH;
    else {
      const g = this.p.globalArgs.get("SOURCE_DATE_EPOCH");
      if (g) v = g;
    }
    if (v === undefined || v === "") return;
    if (!/^[0-9]+$/.test(v))
      throw new DockerfileError({ message: `invalid SOURCE_DATE_EPOCH: ${v}`, fileName: this.p.fileName });
    this.epoch = Number.parseInt(v, 10);
  }

  private validateBaseImagesWithDefaultArgs(
    stages: readonly Stage[],
    metaArgs: readonly ArgInstruction[],
  ): void {
    let args: EnvList;
    try {
      args = buildMetaArgs(this.p.globalArgs, this.p.shlex, metaArgs, undefined, this.loc).args;
    } catch {
      return;
    }
    for (const st of stages) {
      let result: string;
      try {
        result = this.p.shlex.processWordWithMatches(st.from.image, envGetter(args)).result;
      } catch {
        return;
      }
      if (!isValidImageRef(result))
        this.p.lint.run(
          Rules.InvalidDefaultArgInFrom,
          st.from.location,
          Rules.InvalidDefaultArgInFrom.format(st.from.image),
        );
    }
  }

  private reportUnusedFromArgs(unmatched: Set<string>, loc: SourceLocation, lint: Linter): void {
    const keys = new Set<string>([...this.p.outline.allArgs.keys(), ...this.p.globalArgs.keys()]);
    for (const arg of unmatched) {
      if (keys.has(arg)) continue;
      const s = suggestClosest(arg, [...keys], true) ?? "";
      lint.run(Rules.UndefinedArgInFrom, loc, Rules.UndefinedArgInFrom.format(arg, s));
    }
  }

  private namedContext(name: string): NamedContextSpec | undefined {
    const lower = name.toLowerCase();
    if (lower === "scratch" || lower === "context") return undefined;
    const ncs = this.opts.namedContexts;
    if (!ncs) return undefined;
    if (Object.hasOwn(ncs, name)) return ncs[name];
    try {
      const r = parseImageRef(name);
      let familiar = `${r.registry}/${r.repository}`;
      if (r.registry === "docker.io")
        familiar = r.repository.startsWith("library/") ? r.repository.slice(8) : r.repository;
      const full =
        familiar + (r.tag && r.tag !== "latest" ? `:${r.tag}` : "") + (r.digest ? `@${r.digest}` : "");
      if (Object.hasOwn(ncs, full)) return ncs[full];
    } catch {
      // not an image reference
    }
    return undefined;
  }

  private buildDispatchStates(stages: readonly Stage[]): void {
    const p = this.p;
    stages.forEach((st, i) => {
      const lint = p.lint.withMergedConfigFromComments(st.from.comments);
      let nameMatch: ReturnType<ShellLex["processWordWithMatches"]>;
      try {
        nameMatch = p.shlex.processWordWithMatches(st.from.image, envGetter(p.globalArgs));
      } catch (e) {
        throw located(e, st.from.location, this.loc);
      }
      this.reportUnusedFromArgs(nameMatch.unmatched, st.from.location, lint);
      const used = new Set(nameMatch.matched);
      if (nameMatch.result === "")
        throw located(
          new DockerfileError({ message: `base name (${st.from.image}) should not be blank` }),
          st.from.location,
          this.loc,
        );
      const ds = new DispatchState(st, nameMatch.result, st.from.location, p.targetPlatform);
      ds.outline = p.outline.clone();
      if (st.from.platform !== undefined) {
        const v = st.from.platform;
        let m: ReturnType<ShellLex["processWordWithMatches"]>;
        try {
          m = p.shlex.processWordWithMatches(v, envGetter(p.globalArgs));
        } catch (e) {
          throw located(
            new DockerfileError({
              message: `failed to process arguments for platform ${v}: ${(e as Error).message}`,
            }),
            st.from.location,
            this.loc,
          );
        }
        this.reportUnusedFromArgs(m.unmatched, st.from.location, lint);
        if (m.matched.size === 1 && m.unmatched.size === 0 && m.matched.has("TARGETPLATFORM")) {
          if (m.result === p.globalArgs.get("TARGETPLATFORM"))
            lint.run(
              Rules.RedundantTargetPlatform,
              st.from.location,
              Rules.RedundantTargetPlatform.format(v),
            );
        }
        if (m.matched.size === 0 && m.unmatched.size === 0) {
          try {
            const cp = parsePlatform(m.result);
            if (!st.name.includes(cp.os) && !st.name.includes(cp.architecture))
              lint.run(
                Rules.FromPlatformFlagConstDisallowed,
                st.from.location,
                Rules.FromPlatformFlagConstDisallowed.format(m.result),
              );
          } catch {
            // fails below
          }
        }
        if (m.result === "") {
          const keys = p.globalArgs.keys();
          let suggestion: string | undefined;
          for (const k of m.unmatched) {
            const s = suggestClosest(k, keys, true);
            if (s) {
              suggestion = `did you mean ${s}?`;
              break;
            }
          }
          throw located(
            new DockerfileError({ message: `empty platform value from expression ${v}`, suggestion }),
            st.from.location,
            this.loc,
          );
        }
        try {
          ds.platform = parsePlatform(m.result);
        } catch (e) {
          throw located(
            new DockerfileError({ message: `failed to parse platform ${v}: ${(e as Error).message}` }),
            st.from.location,
            this.loc,
          );
        }
        for (const k of m.matched) used.add(k);
      }
      if (st.name !== "") {
        const nc = this.namedContext(st.name);
        if (nc) {
          ds.namedContext = nc;
          this.all.add(ds);
          ds.base = undefined;
          return;
        }
      }
      if (st.name === "") ds.stageName = `stage-${i}`;
      this.all.add(ds);
      for (const k of used) ds.outline.usedArgs.add(k);
      let total = 0;
      if (ds.baseName !== EMPTY_IMAGE_NAME && !ds.base) total = 1;
      for (const c of st.commands) {
        if (c.kind === "add" || c.kind === "copy" || c.kind === "run" || c.kind === "workdir") total++;
      }
      ds.cmdTotal = total;
      const nc = this.opts.noCacheStages;
      ds.ignoreCache = nc === true || (nc !== undefined && (nc.length === 0 || nc.includes(st.name)));
    });
  }

  private resolveTarget(): DispatchState {
    const t = this.opts.target;
    if (!t) return this.all.last();
    const ds = this.all.findByName(t);
    if (!ds) {
      const s = suggestClosest(t, this.all.names(), true);
      throw new DockerfileError({
        message: `target stage ${JSON.stringify(t)} could not be found`,
        fileName: this.p.fileName,
        suggestion: s ? `did you mean ${s}?` : undefined,
      });
    }
    return ds;
  }

  private readonly unregisteredByName = new Map<string, DispatchState>();

  /**
   * The state for an image or named context that COPY --from / RUN --mount from= name without a
   * stage: one per name, so that every use adds to the same transfer filter.
   */
  private unregistered(baseName: string, loc: SourceLocation): DispatchState {
    let ds = this.unregisteredByName.get(baseName);
    if (!ds) {
      ds = new DispatchState(undefined, baseName, loc, this.p.targetPlatform);
      this.unregisteredByName.set(baseName, ds);
    }
    return ds;
  }

  /** BuildKit's toCommand: the states an instruction reads from. */
  toCommand(instr: StageInstruction, isOnBuild: boolean): Command {
    const sources: (DispatchState | undefined)[] = [];
    if (instr.kind === "copy" && instr.from !== "") {
      let res: string;
      try {
        res = this.p.shlex.processWord(instr.from, { get: () => undefined, keys: () => [] });
      } catch (e) {
        throw located(e, instr.location, this.loc);
      }
      if (res !== instr.from)
        throw located(
          new DockerfileError({
            message:
              "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
          }),
          instr.location,
          this.loc,
        );
      let stn: DispatchState | undefined;
      if (/^[+-]?[0-9]+$/.test(instr.from)) {
        const index = Number.parseInt(instr.from, 10);
        stn = this.all.findByIndex(index);
        if (!stn)
          throw located(
            new DockerfileError({ message: `invalid stage index ${index}` }),
            instr.location,
            this.loc,
          );
      } else {
        stn = this.all.findByName(instr.from) ?? this.unregistered(instr.from, instr.location);
      }
      sources.push(stn);
    }
    if (instr.kind === "run") {
      for (const m of instr.mounts) {
        const from = m.from === "" ? EMPTY_IMAGE_NAME : m.from;
        sources.push(this.all.findByName(from) ?? this.unregistered(from, instr.location));
      }
    }
    return { instr, sources, isOnBuild };
  }

  private buildStageDependencyGraph(): void {
    const states = [...this.all.states];
    for (const d of states) {
      if (!d.stage) continue;
      d.commands = d.stage.commands.map((c) => this.toCommand(c, false));
      for (const cmd of d.commands) this.addDeps(d, cmd);
    }
    const cycle = findCycle(this.all.states);
    if (cycle) {
      const first = cycle.path[0]!;
      throw located(
        new DockerfileError({ message: `circular dependency detected on stage: ${cycle.state.stageName}` }),
        first.location,
        this.loc,
      );
    }
    if (this.all.states.length === 1) this.all.states[0]!.stageName = "";
  }

  private addDeps(d: DispatchState, cmd: Command): void {
    for (const src of cmd.sources) {
      if (!src) continue;
      d.deps.set(src, cmd.instr);
      if (src.unregistered && !this.all.states.includes(src)) this.all.add(src);
    }
  }

  /** Copies what a stage inherits from the stage it is built on (BuildKit's init). */
  private init(ds: DispatchState): void {
    if (!ds.base) return;
    const b = ds.base;
    ds.state = b.state;
    ds.platform = b.platform;
    ds.image = cloneImage(b.image);
    delete ds.image.config.OnBuild;
    ds.baseImg = b.baseImg ? cloneImage(b.baseImg) : undefined;
    ds.paths = b.paths;
    ds.workdirSet = b.workdirSet;
    ds.buildArgs = [...ds.buildArgs, ...b.buildArgs];
  }

  private async resolveStages(target: DispatchState): Promise<Set<DispatchState>> {
    for (let round = 0; ; round++) {
      if (round > 100)
        throw new DockerfileError({
          message: "too many nested ONBUILD dependencies",
          fileName: this.p.fileName,
        });
      const reachable = allReachable(target);
      await this.resolveReachableStages(reachable);
      let newDeps = false;
      for (const d of this.all.states) {
        if (!reachable.has(d)) continue;
        this.init(d);
        const onbuilds = [...(d.image.config.OnBuild ?? [])];
        if (d.base && !d.onBuildInit) {
          for (const cmd of d.base.commands)
            if (cmd.instr.kind === "onbuild") onbuilds.push(cmd.instr.expression);
          d.onBuildInit = true;
        }
        if (onbuilds.length > 0) {
          if (this.initOnBuildTriggers(d, onbuilds)) newDeps = true;
          delete d.image.config.OnBuild;
        }
      }
      if (!newDeps) return reachable;
    }
  }

  private initOnBuildTriggers(d: DispatchState, triggers: readonly string[]): boolean {
    let hasNewDeps = false;
    const commands: Command[] = [];
    for (const trigger of triggers) {
      let instr: StageInstruction;
      try {
        const parsed = parseDockerfile(trigger, { fileName: this.p.fileName });
        if (parsed.ast.children.length !== 1)
          throw new DockerfileError({ message: "onbuild trigger should be a single expression" });
        const node = parsed.ast.children[0]!;
        node.startLine = d.location.startLine;
        node.endLine = d.location.endLine;
        const ic = parseInstruction(node, { fileName: this.p.fileName });
        if (ic.kind === "from")
          throw new DockerfileError({ message: "FROM isn't allowed as an ONBUILD trigger" });
        instr = ic;
      } catch (e) {
        throw located(e, d.location, this.loc);
      }
      const cmd = this.toCommand(instr, true);
      if (cmd.sources.length > 0) hasNewDeps = true;
      commands.push(cmd);
      this.addDeps(d, cmd);
    }
    d.commands = [...commands, ...d.commands];
    d.cmdTotal += commands.length;
    return hasNewDeps;
  }

  private async resolveReachableStages(reachable: Set<DispatchState>): Promise<void> {
    const jobs: Promise<void>[] = [];
    for (const d of this.all.states) {
      const isReachable = reachable.has(d) || !!this.opts.allStages;
      if (d.base || d.dispatched || d.resolved) continue;
      d.resolved = isReachable;
      if (d.baseName === EMPTY_IMAGE_NAME && !d.namedContext) {
        d.state = scratch();
        d.image = emptyImage(this.p.targetPlatform);
        d.platform = this.p.targetPlatform;
        if (d.unregistered) d.dispatched = true;
        continue;
      }
      jobs.push(this.resolveBaseImage(d, isReachable));
    }
    await Promise.all(jobs);
  }

  private resolveImage(ref: string, platform: Platform): Promise<ResolvedImage> {
    const resolve = this.opts.resolveImage;
    if (!resolve) {
      return Promise.resolve({
        ref,
        config: toImageConfig(emptyImage(platform)) as ImageConfig,
      });
    }
    const key = `${ref} ${platformKey(platform)}`;
    let pr = this.resolveCache.get(key);
    if (!pr) {
      pr = resolve(ref, platform);
      this.resolveCache.set(key, pr);
    }
    return pr;
  }

  private async loadNamedContext(
    nc: NamedContextSpec,
    platform: Platform,
    name: string,
    d: DispatchState,
  ): Promise<{ state: State; config?: ImageConfig }> {
    switch (nc.kind) {
      case "image": {
        const r = await this.resolveImage(normalizeRef(nc.ref), platform);
        return {
          state: imageSource(r.ref, {
            platform,
            description: `[context ${name}] load metadata for ${nc.ref}`,
          }),
          config: r.config,
        };
      }
      case "oci-layout": {
        const id = `oci-layout://${nc.path}${nc.ref ? (nc.ref.startsWith("@") || nc.ref.startsWith(":") ? nc.ref : `:${nc.ref}`) : ""}`;
        const r = await this.resolveImage(id, platform);
        const at = r.ref.lastIndexOf("@");
        const digest = at >= 0 ? r.ref.slice(at + 1) : "";
        const state = digest.startsWith("sha256:")
          ? ociLayout(nc.path, `@${digest}`, { platform })
          : ociLayout(nc.path, nc.ref, { platform });
        return { state, config: r.config };
      }
      case "local": {
        const paths = d.paths;
        const st = deferred(() => {
          const follow = normalizeContextPaths(paths);
          return localSource(nc.name, {
            followPaths: follow,
            include: follow,
            sharedKeyHint: nc.name,
            description: `[context ${name}] load from client`,
          });
        });
        return { state: st };
      }
      case "url": {
        if (isGitSource(nc.url))
          return {
            state: gitContextState(nc.url, {
              description: `[context ${name}] load git source ${nc.url}`,
            }),
          };
        let base = "__unnamed__";
        try {
          base = posix.basename(new URL(nc.url).pathname) || base;
        } catch {
          throw new DockerfileError({ message: `invalid URL for named context ${name}: ${nc.url}` });
        }
        return { state: httpSource(nc.url, { filename: base }) };
      }
      case "target": {
        if (!nc.state)
          throw new DockerfileError({
            message: `named context ${name} refers to target ${nc.target}, which the engine has not built`,
          });
        return { state: nc.state, config: nc.config };
      }
    }
  }

  private async resolveBaseImage(d: DispatchState, reachable: boolean): Promise<void> {
    try {
      await this.resolveBaseImageInner(d, reachable);
    } catch (e) {
      throw located(e, d.location, this.loc);
    } finally {
      if (d.unregistered) d.dispatched = true;
    }
  }

  private async resolveBaseImageInner(d: DispatchState, reachable: boolean): Promise<void> {
    const origName = d.baseName;
    let platform = d.platform ?? this.p.targetPlatform;
    let isScratch = false;
    if (reachable && d.namedContext) {
      const { state, config } = await this.loadNamedContext(d.namedContext, platform, d.name, d);
      d.dispatched = true;
      d.state = state;
      if (config) {
        d.image = fromImageConfig(config);
        if (config.architecture && config.os)
          d.platform = {
            os: config.os,
            architecture: config.architecture,
            ...(config.variant ? { variant: config.variant } : {}),
          };
      } else {
        d.image = emptyImage(platform);
      }
      return;
    }
    let normalized: string;
    try {
      normalized = normalizeRef(d.baseName);
    } catch (e) {
      throw new DockerfileError({
        message: `failed to parse stage name ${JSON.stringify(d.baseName)}: ${(e as Error).message}`,
      });
    }
    d.baseName = normalized;
    let pinned = normalized;
    if (reachable) {
      const nc = this.namedContext(origName);
      if (nc) {
        const { state, config } = await this.loadNamedContext(nc, platform, origName, d);
        const img = config ? fromImageConfig(config) : emptyImage(platform);
        d.baseImg = cloneImage(img);
        d.image = img;
        d.state = state.platform(platform);
        d.platform = platform;
        return;
      }
      let r: ResolvedImage;
      try {
        r = await this.resolveImage(normalized, platform);
      } catch (e) {
        const s = suggestClosest(origName, [...this.all.names(), ...COMMON_IMAGE_NAMES], true);
        throw new DockerfileError({
          message: `${origName}: ${e instanceof DockerfileError ? e.detail : (e as Error).message}`,
          suggestion: s ? `did you mean ${s}?` : undefined,
          cause: e,
        });
      }
      const img = fromImageConfig(r.config);
      d.baseImg = cloneImage(img);
      if (!d.platform && this.p.implicitTarget)
        platform = autoDetectPlatform(img, platform, [this.p.buildPlatform]);
      pinned = r.ref;
      if (img.rootfs.diff_ids.length === 0) {
        isScratch = r.config.history === undefined || r.config.history.every((h) => h.empty_layer);
      }
      d.image = img;
    }
    d.baseName = pinned;
    if (isScratch) d.state = scratch();
    else {
      d.state = imageSource(pinned, {
        platform,
        description: this.prefixCommand(d, `FROM ${pinned}`, platform, envGetter(EnvList.empty)),
        locations: [{ file: this.p.fileName, startLine: d.location.startLine, endLine: d.location.endLine }],
      }).platform(platform);
      if (reachable) {
        const actualOs = d.image.os;
        const actualArch = d.image.architecture;
        if (platform.os !== actualOs || platform.architecture !== actualArch) {
          const expected = formatPlatform(normalizePlatform(platform));
          let actual = `${actualOs}/${actualArch}`;
          try {
            actual = formatPlatform(
              normalizePlatform({ os: actualOs, architecture: actualArch, variant: d.image.variant }),
            );
          } catch {
            // keep as is
          }
          this.p.lint.run(
            Rules.InvalidBaseImagePlatform,
            d.location,
            Rules.InvalidBaseImagePlatform.format(origName, expected, actual),
          );
        }
      }
    }
    d.platform = platform;
  }

  /** BuildKit's prefixCommand: `[stage 2/5] ` in front of a progress name. */
  prefixCommand(d: DispatchState, str: string, platform: Platform | undefined, env: EnvGetter): string {
    if (d.cmdTotal === 0) return str;
    let out = "[";
    if (this.opts.multiPlatform && platform)
      out += formatPlatform(platform) + formatTargetPlatform(platform, env) + " ";
    if (d.stageName !== "") out += `${d.stageName} `;
    d.cmdIndex++;
    const width = Math.floor(1 + Math.log10(d.cmdTotal));
    out += `${String(d.cmdIndex).padStart(width, " ")}/${d.cmdTotal}] `;
    if (d.cmdIsOnBuild) out += "ONBUILD ";
    return out + str;
  }

  private dispatchStages(reachable: Set<DispatchState>, target: DispatchState): void {
    const p = this.p;
    for (const d of this.all.states) {
      if (!this.opts.allStages && (!reachable.has(d) || d.dispatched)) continue;
      if (d.dispatched && d.unregistered) continue;
      this.init(d);
      d.dispatched = true;
      if (!d.platform) d.platform = p.targetPlatform;
      if (envGet(d.image.config.Env, "PATH") === undefined && d.platform.os !== "windows") {
        d.image.config.Env = [...(d.image.config.Env ?? []), `PATH=${defaultPath()}`];
      }
      let st = d.state;
      for (const e of d.image.config.Env ?? []) {
        const i = e.indexOf("=");
        st = i < 0 ? st.addEnv(e, "") : st.addEnv(e.slice(0, i), e.slice(i + 1));
      }
      if (this.opts.hostname) st = st.hostname(this.opts.hostname);
      d.state = st;
      if (d.image.config.WorkingDir) {
        try {
          const wd = normalizeWorkdir(d.image.config.WorkingDir, d.image.config.WorkingDir);
          d.image.config.WorkingDir = wd;
          d.state = d.state.dir(wd);
        } catch (e) {
          throw located(e, d.location, this.loc);
        }
      }
      if (d.image.config.User) d.state = d.state.user(d.image.config.User);
      const net = this.opts.network;
      d.state = d.state.network(net === "host" ? "host" : net === "none" ? "none" : "sandbox");
      const dctx: DispatchContext = {
        conv: this,
        globalArgs: p.globalArgs,
        buildArgValues: this.opts.buildArgs ?? {},
        shlex: p.shlex,
        buildContext: this.buildContext,
        proxyEnv: this.proxyEnv,
        lint: p.lint,
        epoch: this.epoch,
      };
      for (const cmd of d.commands) {
        try {
          dispatch(d, cmd, dctx);
        } catch (e) {
          throw located(e, cmd.instr.location, this.loc);
        }
      }
      for (const x of d.ctxPaths) this.ctxPaths.add(x);
    }
    target.paths.add("/");
  }
}

function defaultPath(): string {
  return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

function autoDetectPlatform(img: WorkingImage, target: Platform, supported: readonly Platform[]): Platform {
  if (target.os === img.os && target.architecture === img.architecture) return target;
  for (const p of supported) if (p.os === img.os && p.architecture === img.architecture) return p;
  return target;
}

/** `->arm64` when TARGET* args point elsewhere than the stage's platform (cross compiles). */
function formatTargetPlatform(base: Platform, env: EnvGetter): string {
  let t: Platform | undefined;
  let os = "";
  let arch = "";
  let variant = "";
  let set = false;
  for (const key of env.keys()) {
    const v = env.get(key) ?? "";
    if (key === "TARGETPLATFORM") {
      try {
        t = parsePlatform(v);
        break;
      } catch {
        continue;
      }
    }
    if (key === "TARGETOS") {
      os = v;
      set = true;
    } else if (key === "TARGETARCH") {
      arch = v;
      set = true;
    } else if (key === "TARGETVARIANT") {
      variant = v;
      set = true;
    }
  }
  if (!t && set) {
    try {
      t = normalizePlatform({
        os: os || base.os,
        architecture: arch || base.architecture,
        variant: variant || undefined,
      });
    } catch {
      t = undefined;
    }
  }
  if (!t) return "";
  if (t.os === base.os && t.architecture !== base.architecture)
    return `->${t.architecture}${t.variant ? `/${t.variant}` : ""}`;
  if (t.os !== base.os) return `->${formatPlatform(t)}`;
  return "";
}

/** The context paths to transfer, sorted; empty when the whole context is needed. */
export function normalizeContextPaths(paths: ReadonlySet<string>): string[] {
  if (paths.size === 0) return [];
  const out: string[] = [];
  for (const p of paths) {
    if (p === "/") return [];
    const rel = posix.normalize(posix.join(".", p)).replace(/\/+$/, "");
    out.push(rel === "" ? "." : rel);
  }
  return [...new Set(out)].sort();
}

/** Keeps rule references typed for callers of `Linter.run`. */
export type { LintRule, Warning };
