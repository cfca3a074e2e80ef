// One stage instruction → LLB ops and image-config changes (BuildKit's dispatch and the
// dispatchX functions): variable expansion in the instructions BuildKit expands, the UndefinedVar
// and other per-instruction checks, and the history entry each instruction leaves.
import { posix } from "node:path";
import { PatternMatcher } from "../../../fs/patterns.js";
import {
  type ChownSpec,
  type CopyOptions,
  copy as copyAction,
  type EnvList,
  type FileAction,
  git as gitSource,
  http as httpSource,
  merge,
  mkdir,
  mkfile,
  parseChown,
  type RunMount,
  type RunSecret,
  type RunSsh,
  type State,
  scratch,
} from "../../../llb/builder.js";
import type { ProxyEnv } from "../../../llb/ops.js";
import { isDigest } from "../../../oci/digest.js";
import type { Linter } from "../checks/linter.js";
import { Rules } from "../checks/rules.js";
import { expandRunMounts } from "../instructions/mount.js";
import type {
  AddInstruction,
  ArgInstruction,
  CmdInstruction,
  CopyInstruction,
  EntrypointInstruction,
  EnvInstruction,
  ExposeInstruction,
  HealthcheckInstruction,
  KeyValuePair,
  LabelInstruction,
  MountSpec,
  RunInstruction,
  SourceContent,
  SourceLocation,
  StageInstruction,
  WorkdirInstruction,
} from "../instructions/types.js";
import { DockerfileError, suggestClosest } from "../parser/errors.js";
import { chompHeredocContent, mustParseHeredoc } from "../parser/heredoc.js";
import type { EnvGetter } from "../shell/lex.js";
import { ShellLex } from "../shell/lex.js";
import type { Converter } from "./convert.js";
import { parsePorts } from "./expose.js";
import { isHttpSource, parseGitRef } from "./git-ref.js";
import { addEnv, commitToHistory } from "./image-config.js";
import type { BuildArg, Command, DispatchState, UsedOnce } from "./stage-graph.js";
import {
  cleanPath,
  containsWildcards,
  goHealthcheck,
  goQuoteSlice,
  goSlice,
  isSymbolicMode,
  normalizePath,
  normalizeWorkdir,
  parseSignal,
  pathRelativeToWorkingDir,
  summarizeHeredoc,
  uppercaseCmd,
} from "./util.js";

export interface DispatchContext {
  readonly conv: Converter;
  readonly globalArgs: EnvList;
  readonly buildArgValues: Readonly<Record<string, string>>;
  readonly shlex: ShellLex;
  readonly buildContext: State;
  readonly proxyEnv?: ProxyEnv;
  readonly lint: Linter;
  readonly epoch?: number;
}

/** Args that are build args but never put in the environment (SBOM scan switches). */
const NON_ENV_ARGS = new Set(["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"]);

function fail(message: string): never {
  throw new DockerfileError({ message });
}

function stateEnv(d: DispatchState): EnvGetter {
  const env = d.state.envList();
  return { get: (k) => env.get(k), keys: () => env.keys() };
}

function reportUnmatched(
  unmatched: ReadonlySet<string>,
  buildArgs: readonly BuildArg[],
  env: EnvGetter,
  loc: SourceLocation,
  lint: Linter,
): void {
  if (unmatched.size === 0) return;
  const rest = new Set(unmatched);
  for (const a of buildArgs) rest.delete(a.key);
  const options = env.keys();
  for (const v of rest) {
    if (NON_ENV_ARGS.has(v)) continue;
    const s = suggestClosest(v, options, true) ?? "";
    lint.run(Rules.UndefinedVar, loc, Rules.UndefinedVar.format(v, s));
  }
}

const SECRET_DENY =
  /(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)/i;
const SECRET_ALLOW = /(?:_|^)(?:public|file|version)(?:_|$)/i;

function validateNoSecretKey(instruction: string, key: string, loc: SourceLocation, lint: Linter): void {
  if (SECRET_DENY.test(key) && !SECRET_ALLOW.test(key))
    lint.run(Rules.SecretsUsedInArgOrEnv, loc, Rules.SecretsUsedInArgOrEnv.format(instruction, key));
}

function validateUsedOnce(name: string, loc: SourceLocation, tracker: UsedOnce, lint: Linter): void {
  if (tracker.isSet && tracker.location)
    lint.run(
      Rules.MultipleInstructionsDisallowed,
      tracker.location,
      Rules.MultipleInstructionsDisallowed.format(name),
    );
  tracker.isSet = true;
  tracker.location = loc;
}

/** BuildKit's withShell: the stage's SHELL (or /bin/sh -c) in front of the joined command. */
function withShell(d: DispatchState, args: readonly string[]): string[] {
  const shell = d.image.config.Shell?.length
    ? [...d.image.config.Shell]
    : d.image.os === "windows"
      ? ["cmd", "/S", "/C"]
      : ["/bin/sh", "-c"];
  return [...shell, args.join(" ")];
}

/** BuildKit's processCmdEnv: expands a progress name; on error, the text as it was. */
function processCmdEnv(lex: ShellLex, text: string, env: EnvGetter): string {
  try {
    return lex.processWord(text, env);
  } catch {
    return text;
  }
}

function rawLex(src: ShellLex): ShellLex {
  const l = new ShellLex(src.escapeToken);
  l.rawQuotes = true;
  l.skipUnsetEnv = true;
  return l;
}

function locations(_d: DispatchState, loc: SourceLocation, c: DispatchContext) {
  return [{ file: c.conv.p.fileName, startLine: loc.startLine, endLine: loc.endLine }];
}

/** Expanded copies of the parts of an instruction BuildKit expands (its Expand methods). */
function expandInstruction(
  d: DispatchState,
  instr: StageInstruction,
  c: DispatchContext,
  lint: Linter,
): { instr: StageInstruction; mounts?: MountSpec[] } {
  const exp = (word: string): string => {
    const env = stateEnv(d);
    const r = c.shlex.processWordWithMatches(word, env);
    reportUnmatched(r.unmatched, d.buildArgs, env, instr.location, lint);
    return r.result;
  };
  const expRaw = (contents: readonly SourceContent[]): SourceContent[] =>
    contents.map((sc) => {
      if (!sc.expand) return sc;
      const l = new ShellLex("\\");
      l.skipProcessQuotes = true;
      const env = stateEnv(d);
      const r = l.processWordWithMatches(sc.data, env);
      reportUnmatched(r.unmatched, d.buildArgs, env, instr.location, lint);
      return { ...sc, data: r.result };
    });
  const kvps = (pairs: readonly KeyValuePair[]) =>
    pairs.map((kv) => ({ key: exp(kv.key), value: exp(kv.value), noDelim: kv.noDelim }));
  switch (instr.kind) {
    case "env":
      return { instr: { ...instr, pairs: kvps(instr.pairs) } };
    case "label":
      return { instr: { ...instr, pairs: kvps(instr.pairs) } };
    case "add": {
      const chown = exp(instr.chown);
      const chmod = exp(instr.chmod);
      const checksum = exp(instr.checksum);
      const sources = instr.sources.map(exp);
      const dest = exp(instr.dest);
      return { instr: { ...instr, chown, chmod, checksum, sources, dest, heredocs: expRaw(instr.heredocs) } };
    }
    case "copy": {
      const chown = exp(instr.chown);
      const chmod = exp(instr.chmod);
      const sources = instr.sources.map(exp);
      const dest = exp(instr.dest);
      return { instr: { ...instr, chown, chmod, sources, dest, heredocs: expRaw(instr.heredocs) } };
    }
    case "workdir":
      return { instr: { ...instr, path: exp(instr.path) } };
    case "user":
      return { instr: { ...instr, user: exp(instr.user) } };
    case "volume":
      return { instr: { ...instr, volumes: instr.volumes.map(exp) } };
    case "stopsignal":
      return { instr: { ...instr, signal: exp(instr.signal) } };
    case "run":
      return { instr, mounts: expandRunMounts(instr, exp) };
    default:
      return { instr };
  }
}

/** Dispatches one instruction of a stage. Throws DockerfileError (located by the caller). */
export function dispatch(d: DispatchState, cmd: Command, c: DispatchContext): void {
  const lint = c.lint.withMergedConfigFromComments(cmd.instr.comments);
  d.cmdIsOnBuild = cmd.isOnBuild;
  const { instr, mounts } = expandInstruction(d, cmd.instr, c, lint);
  const epoch = c.epoch;
  switch (instr.kind) {
    case "maintainer":
      d.image.author = instr.maintainer;
      commitToHistory(d.image, `MAINTAINER ${instr.maintainer}`, false, false, epoch);
      return;
    case "env":
      dispatchEnv(d, instr, lint, epoch);
      return;
    case "run":
      dispatchRun(d, instr, mounts ?? [], cmd.sources, c, lint);
      return;
    case "workdir":
      dispatchWorkdir(d, instr, c, lint);
      return;
    case "add":
      dispatchCopy(d, instr, c.buildContext, undefined, c, lint);
      return;
    case "copy": {
      let src = c.buildContext;
      let from: DispatchState | undefined;
      if (cmd.sources.length) {
        from = cmd.sources[0]!;
        if (!from.dispatched)
          fail(
            `cannot copy from stage ${JSON.stringify(instr.from)}, it needs to be defined before current stage ${JSON.stringify(d.stageName)}`,
          );
        src = from.state;
      }
      dispatchCopy(d, instr, src, from, c, lint);
      return;
    }
    case "label":
      dispatchLabel(d, instr, lint, epoch);
      return;
    case "onbuild":
      d.image.config.OnBuild = [...(d.image.config.OnBuild ?? []), instr.expression];
      return;
    case "cmd":
      dispatchCmd(d, instr, lint, epoch);
      return;
    case "entrypoint":
      dispatchEntrypoint(d, instr, lint, epoch);
      return;
    case "healthcheck":
      dispatchHealthcheck(d, instr, lint, epoch);
      return;
    case "expose":
      dispatchExpose(d, instr, c, lint);
      return;
    case "user":
      d.state = d.state.user(instr.user);
      d.image.config.User = instr.user;
      commitToHistory(d.image, `USER ${instr.user}`, false, false, epoch);
      return;
    case "volume": {
      const vols = { ...(d.image.config.Volumes ?? {}) };
      for (const v of instr.volumes) {
        if (v === "") fail("VOLUME specified can not be an empty string");
        vols[v] = {};
      }
      d.image.config.Volumes = vols;
      commitToHistory(d.image, `VOLUME ${goSlice(instr.volumes)}`, false, false, epoch);
      return;
    }
    case "stopsignal":
      try {
        parseSignal(instr.signal);
      } catch (e) {
        fail((e as Error).message);
      }
      d.image.config.StopSignal = instr.signal;
      commitToHistory(d.image, `STOPSIGNAL ${instr.signal}`, false, false, epoch);
      return;
    case "shell":
      d.image.config.Shell = [...instr.shell];
      commitToHistory(d.image, `SHELL ${goSlice(instr.shell)}`, false, false, epoch);
      return;
    case "arg":
      dispatchArg(d, instr, c, lint);
      return;
  }
}

function dispatchEnv(d: DispatchState, instr: EnvInstruction, lint: Linter, epoch?: number): void {
  let msg = "ENV";
  for (const e of instr.pairs) {
    if (e.noDelim)
      lint.run(Rules.LegacyKeyValueFormat, instr.location, Rules.LegacyKeyValueFormat.format(instr.keyword));
    validateNoSecretKey("ENV", e.key, instr.location, lint);
    msg += ` ${e.key}=${e.value}`;
    d.state = d.state.addEnv(e.key, e.value);
    d.image.config.Env = addEnv(d.image.config.Env, e.key, e.value);
  }
  commitToHistory(d.image, msg, false, false, epoch);
}

function dispatchLabel(d: DispatchState, instr: LabelInstruction, lint: Linter, epoch?: number): void {
  let msg = "LABEL";
  const labels = { ...(d.image.config.Labels ?? {}) };
  for (const v of instr.pairs) {
    if (v.noDelim)
      lint.run(Rules.LegacyKeyValueFormat, instr.location, Rules.LegacyKeyValueFormat.format(instr.keyword));
    labels[v.key] = v.value;
    msg += ` ${v.key}=${v.value}`;
  }
  d.image.config.Labels = labels;
  commitToHistory(d.image, msg, false, false, epoch);
}

function dispatchCmd(d: DispatchState, instr: CmdInstruction, lint: Linter, epoch?: number): void {
  validateUsedOnce(instr.keyword, instr.location, d.cmd, lint);
  let args = [...instr.cmdLine];
  if (instr.prependShell) {
    if (!d.image.config.Shell?.length)
      lint.run(Rules.JSONArgsRecommended, instr.location, Rules.JSONArgsRecommended.format(instr.keyword));
    args = withShell(d, args);
  }
  d.image.config.Cmd = args;
  d.image.config.ArgsEscaped = true;
  commitToHistory(d.image, `CMD ${goQuoteSlice(args)}`, false, false, epoch);
}

function dispatchEntrypoint(
  d: DispatchState,
  instr: EntrypointInstruction,
  lint: Linter,
  epoch?: number,
): void {
  validateUsedOnce(instr.keyword, instr.location, d.entrypoint, lint);
  let args = [...instr.cmdLine];
  if (instr.prependShell) {
    if (!d.image.config.Shell?.length)
      lint.run(Rules.JSONArgsRecommended, instr.location, Rules.JSONArgsRecommended.format(instr.keyword));
    args = withShell(d, args);
  }
  d.image.config.Entrypoint = args;
  if (!d.cmd.isSet) d.image.config.Cmd = null;
  commitToHistory(d.image, `ENTRYPOINT ${goQuoteSlice(args)}`, false, false, epoch);
}

function dispatchHealthcheck(
  d: DispatchState,
  instr: HealthcheckInstruction,
  lint: Linter,
  epoch?: number,
): void {
  validateUsedOnce(instr.keyword, instr.location, d.healthcheck, lint);
  const h = instr.health;
  const hc = {
    Test: [...h.test],
    Interval: h.interval,
    Timeout: h.timeout,
    StartPeriod: h.startPeriod,
    StartInterval: h.startInterval,
    Retries: h.retries,
  };
  d.image.config.Healthcheck = hc;
  commitToHistory(d.image, `HEALTHCHECK ${goHealthcheck(hc)}`, false, false, epoch);
}

function dispatchExpose(d: DispatchState, instr: ExposeInstruction, c: DispatchContext, lint: Linter): void {
  const env = stateEnv(d);
  const ports: string[] = [];
  for (const p of instr.ports) ports.push(...c.shlex.processWords(p, env));
  let psp: string[];
  try {
    psp = parsePorts(ports, {
      protoCasing: (raw) =>
        lint.run(Rules.ExposeProtoCasing, instr.location, Rules.ExposeProtoCasing.format(raw)),
      invalidFormat: (raw) =>
        lint.run(Rules.ExposeInvalidFormat, instr.location, Rules.ExposeInvalidFormat.format(raw)),
    });
  } catch (e) {
    fail((e as Error).message);
  }
  const exposed = { ...(d.image.config.ExposedPorts ?? {}) };
  for (const p of psp) exposed[p] = {};
  d.image.config.ExposedPorts = exposed;
  commitToHistory(d.image, `EXPOSE ${goSlice(psp)}`, false, false, c.epoch);
}

function dispatchArg(d: DispatchState, instr: ArgInstruction, c: DispatchContext, lint: Linter): void {
  const commitStrs: string[] = [];
  for (const decl of instr.args) {
    validateNoSecretKey("ARG", decl.key, instr.location, lint);
    const hasValue = Object.hasOwn(c.buildArgValues, decl.key);
    let value = decl.value;
    let hasDefault = value !== undefined;
    let skipArgInfo = false;
    if (!hasDefault && !hasValue) {
      const g = c.globalArgs.get(decl.key);
      if (g !== undefined) {
        value = g;
        skipArgInfo = true;
        hasDefault = false;
      }
    }
    if (hasValue) value = c.buildArgValues[decl.key]!;
    else if (hasDefault) {
      const env = stateEnv(d);
      const r = c.shlex.processWordWithMatches(value!, env);
      reportUnmatched(r.unmatched, d.buildArgs, env, instr.location, lint);
      value = r.result;
    }
    if (value !== undefined && !NON_ENV_ARGS.has(decl.key)) d.state = d.state.addEnv(decl.key, value);
    if (!skipArgInfo)
      d.outline.allArgs.set(decl.key, {
        key: decl.key,
        value,
        description: decl.docComment,
        deps: new Set(),
        location: instr.location,
      });
    d.outline.usedArgs.add(decl.key);
    d.buildArgs.push({ key: decl.key, value });
    commitStrs.push(value !== undefined ? `${decl.key}=${value}` : decl.key);
  }
  commitToHistory(d.image, `ARG ${commitStrs.join(" ")}`, false, false, c.epoch);
}

function dispatchWorkdir(
  d: DispatchState,
  instr: WorkdirInstruction,
  c: DispatchContext,
  lint: Linter,
): void {
  if (!d.workdirSet && !posix.isAbsolute(instr.path))
    lint.run(Rules.WorkdirRelativePath, instr.location, Rules.WorkdirRelativePath.format(instr.path));
  d.workdirSet = true;
  let wd: string;
  try {
    wd = normalizeWorkdir(d.image.config.WorkingDir ?? "", instr.path);
  } catch (e) {
    fail(`normalizing workdir: ${(e as Error).message}`);
  }
  d.image.config.WorkingDir = wd;
  d.state = d.state.dir(wd);
  let withLayer = false;
  if (wd !== "/") {
    const user = d.image.config.User;
    const env = stateEnv(d);
    const name = c.conv.prefixCommand(
      d,
      uppercaseCmd(processCmdEnv(c.shlex, instr.original, env)),
      d.platform,
      env,
    );
    d.state = d.state.file(
      mkdir(wd, 0o755, {
        makeParents: true,
        owner: user ? parseChown(user) : undefined,
        timestamp: c.epoch,
      }),
      {
        description: name,
        locations: locations(d, instr.location, c),
        ignoreCache: d.ignoreCache || undefined,
      },
    );
    withLayer = true;
  }
  commitToHistory(d.image, `WORKDIR ${wd}`, withLayer, false, c.epoch);
}

// ---------- RUN ----------

/** BuildKit's runCommandString: `|2 A=1 B=2 /bin/sh -c …` with the stage's build args in front. */
function runCommandString(args: readonly string[], buildArgs: readonly BuildArg[], env: EnvGetter): string {
  const tmp: string[] = [];
  const idx = new Map<string, number>();
  for (const a of buildArgs) {
    const v = env.get(a.key) ?? a.value ?? "";
    const i = idx.get(a.key);
    if (i !== undefined) tmp[i] = `${a.key}=${v}`;
    else {
      idx.set(a.key, tmp.length);
      tmp.push(`${a.key}=${v}`);
    }
  }
  const parts = tmp.length ? [`|${tmp.length}`, ...tmp] : [];
  return [...parts, ...args].join(" ");
}

function dispatchRun(
  d: DispatchState,
  instr: RunInstruction,
  mounts: readonly MountSpec[],
  sources: readonly (DispatchState | undefined)[],
  c: DispatchContext,
  _lint: Linter,
): void {
  let customName = instr.original;
  d.paths.add("/");
  let args = [...instr.cmdLine];
  const extraMounts: RunMount[] = [];
  const files = instr.heredocs;
  if (files.length > 0) {
    if (args.length !== 1 || !instr.prependShell)
      fail(`parsing produced an invalid run command: ${goSlice(args)}`);
    const heredoc = mustParseHeredoc(args[0]!);
    if (heredoc) {
      let data = files[0]!.data;
      if (files[0]!.chomp) data = chompHeredocContent(data);
      if (d.image.os !== "windows" && data.startsWith("#!")) {
        const f = files[0]!.name;
        const st = scratch()
          .dir("/")
          .file(mkfile(f, 0o755, data), { description: "[internal] preparing inline document" });
        extraMounts.push({ dest: "/dev/pipes/", source: st, selector: "/", readonly: true });
        args = [posix.join("/dev/pipes/", f)];
      } else {
        args = [data];
      }
      customName += ` (${summarizeHeredoc(files[0]!.data)})`;
    } else {
      let b = args[0]!;
      for (const f of files) b += `\n${f.data}${f.name}`;
      args = [b];
    }
  }
  if (instr.prependShell) args = withShell(d, args);

  const runMounts: RunMount[] = [...extraMounts];
  const secrets: RunSecret[] = [];
  const ssh: RunSsh[] = [];
  mounts.forEach((m0, i) => {
    const m = { ...m0 };
    if (m.from === "" && m.type === "cache") m.from = "scratch";
    let st = c.buildContext;
    let src: DispatchState | undefined;
    if (m.from !== "") {
      src = sources[i];
      if (!src) fail(`cannot mount from ${JSON.stringify(m.from)}: unknown source`);
      st = src.state;
      if (!src.dispatched)
        fail(
          `cannot mount from stage ${JSON.stringify(m.from)} to ${JSON.stringify(m.target)}, stage needs to be defined before current command`,
        );
    }
    if (m.type === "secret") {
      secrets.push(secretMount(d, m, instr.location));
      return;
    }
    if (m.type === "ssh") {
      ssh.push(sshMount(d, m, instr.location));
      return;
    }
    const spec: { -readonly [K in keyof RunMount]: RunMount[K] } = { dest: "" };
    if (m.type === "tmpfs") {
      st = scratch();
      spec.tmpfs = { size: m.sizeLimit };
    }
    if (m.readOnly) spec.readonly = true;
    else if (m.type === "bind") spec.noOutput = true;
    if (m.type === "cache") {
      const id = m.id === "" ? cleanPath(m.target) : m.id;
      const ns = c.conv.opts.cacheIdNamespace;
      spec.cache = { id: ns ? `${ns}/${id}` : id, sharing: m.sharing === "" ? "shared" : m.sharing };
    }
    let target = m.target;
    if (!posix.isAbsolute(cleanPath(m.target))) target = posix.join("/", d.state.getDir() || "/", m.target);
    if (target === "/") fail(`invalid mount target ${JSON.stringify(target)}`);
    const srcPath = posix.join("/", m.source);
    if (srcPath !== "/") spec.selector = srcPath;
    else if (m.uid !== undefined || m.gid !== undefined || m.mode !== undefined) {
      st = st.file(
        mkdir("/cache", m.mode ?? 0o755, { owner: { user: { id: m.uid ?? 0 }, group: { id: m.gid ?? 0 } } }),
        { description: "[internal] setting cache mount permissions" },
      );
      spec.selector = "/cache";
    }
    spec.dest = target;
    spec.source = st;
    runMounts.push(spec);
    const usedPath = cleanPath(posix.join("/", m.source));
    if (m.from === "") d.ctxPaths.add(usedPath);
    else src?.paths.add(usedPath);
  });

  const conv = c.conv;
  if (conv.opts.shmSize && conv.opts.shmSize > 0)
    runMounts.push({ dest: "/dev/shm", source: scratch(), tmpfs: { size: conv.opts.shmSize } });

  const seen = new Set<string>(["/"]);
  for (const m of runMounts) {
    if (seen.has(m.dest)) fail(`mount target ${JSON.stringify(m.dest)} is used more than once`);
    seen.add(m.dest);
  }

  const env = stateEnv(d);
  const maskEnv = withSecretEnvMask(mounts, env);
  const shlexRaw = rawLex(c.shlex);
  const description = conv.prefixCommand(
    d,
    uppercaseCmd(processCmdEnv(shlexRaw, customName, maskEnv)),
    d.platform,
    env,
  );
  const network = instr.network === "none" ? "none" : instr.network === "host" ? "host" : undefined;
  d.state = d.state
    .run({
      args,
      mounts: runMounts,
      secrets,
      ssh,
      network: network ?? d.state.getNetwork(),
      security: instr.security === "insecure" ? "insecure" : "sandbox",
      proxyEnv: c.proxyEnv,
      extraHosts: conv.opts.extraHosts,
      ulimits: conv.opts.ulimits,
      cgroupParent: conv.opts.cgroupParent,
      description,
      locations: locations(d, instr.location, c),
      ignoreCache: d.ignoreCache || undefined,
    })
    .root();
  commitToHistory(d.image, `RUN ${runCommandString(args, d.buildArgs, env)}`, true, true, c.epoch);
}

function secretMount(d: DispatchState, m: MountSpec, loc: SourceLocation): RunSecret {
  let id = m.id;
  if (m.source !== "") id = m.source;
  if (id === "") {
    if (m.target === "") fail("one of source, target required");
    id = posix.basename(m.target);
  }
  let target: string | undefined = m.target !== "" ? m.target : undefined;
  if (m.env === undefined) target = m.target !== "" ? m.target : `/run/secrets/${posix.basename(id)}`;
  if (!d.outline.secrets.has(id)) d.outline.secrets.set(id, { required: m.required, location: loc });
  const s: { -readonly [K in keyof RunSecret]: RunSecret[K] } = { id, optional: !m.required };
  if (target !== undefined) s.target = target;
  if (m.env !== undefined) s.env = m.env === "" ? id : m.env;
  if (m.uid !== undefined || m.gid !== undefined || m.mode !== undefined) {
    s.uid = m.uid ?? 0;
    s.gid = m.gid ?? 0;
    s.mode = m.mode ?? 0o400;
  }
  return s;
}

function sshMount(d: DispatchState, m: MountSpec, loc: SourceLocation): RunSsh {
  if (m.source !== "") fail("ssh does not support source");
  const id = m.id === "" ? "default" : m.id;
  if (!d.outline.ssh.has(id)) d.outline.ssh.set(id, { required: m.required, location: loc });
  const s: { -readonly [K in keyof RunSsh]: RunSsh[K] } = { id, optional: !m.required };
  if (m.target !== "") s.target = m.target;
  if (m.uid !== undefined || m.gid !== undefined || m.mode !== undefined) {
    s.uid = m.uid ?? 0;
    s.gid = m.gid ?? 0;
    s.mode = m.mode ?? 0o600;
  }
  return s;
}

/** Secret env vars show as `****` in progress names (BuildKit's withSecretEnvMask). */
function withSecretEnvMask(mounts: readonly MountSpec[], env: EnvGetter): EnvGetter {
  const masked = new Map<string, string>();
  for (const m of mounts) if (m.type === "secret" && m.env !== undefined) masked.set(m.env, "****");
  if (masked.size === 0) return env;
  return {
    get: (k) => masked.get(k) ?? env.get(k),
    keys: () => [...env.keys().filter((k) => !masked.has(k)), ...masked.keys()],
  };
}

// ---------- COPY / ADD ----------

function chmodOptions(chmod: string): { mode?: number; modeSymbolic?: string } {
  if (chmod === "") return {};
  const nonOctal = `invalid chmod parameter: '${chmod}'. it should be octal string and between 0 and 07777`;
  if (/^[0-7]+$/.test(chmod)) {
    const n = Number.parseInt(chmod, 8);
    if (n > 0o7777) fail(nonOctal);
    return { mode: n };
  }
  if (/^[+-]?[0-9]+$/.test(chmod)) fail(nonOctal);
  if (!isSymbolicMode(chmod)) fail(`invalid mode string ${JSON.stringify(chmod)}`);
  return { modeSymbolic: chmod };
}

function validateCopySourcePath(
  src: string,
  isAdd: boolean,
  loc: SourceLocation,
  c: DispatchContext,
  lint: Linter,
): void {
  const patterns = c.conv.opts.dockerignore;
  if (!patterns?.length || patterns.some((p) => p.trim().startsWith("!"))) return;
  let p = cleanPath(src);
  if (p === "." || p === "/") {
    if (!patterns.some((x) => ["*", "**", "**/*"].includes(x.trim()))) return;
  }
  p = p.replace(/^\/+/, "") || ".";
  let matched = false;
  try {
    matched = new PatternMatcher(patterns).matches(p);
  } catch {
    return;
  }
  if (matched) lint.run(Rules.CopyIgnoredFile, loc, Rules.CopyIgnoredFile.format(isAdd ? "Add" : "Copy", p));
}

function dispatchCopy(
  d: DispatchState,
  instr: CopyInstruction | AddInstruction,
  source: State,
  fromState: DispatchState | undefined,
  c: DispatchContext,
  lint: Linter,
): void {
  const isAdd = instr.kind === "add";
  const platform = d.platform!;
  const dest = pathRelativeToWorkingDir(d.state.getDir(), instr.dest);
  const excludePatterns = instr.exclude.length ? [...instr.exclude] : undefined;
  const chmod = chmodOptions(instr.chmod);
  const parents = instr.kind === "copy" && instr.parents;
  let checksum = isAdd ? instr.checksum : "";
  if (checksum !== "") {
    if (instr.sources.length !== 1 || instr.heredocs.length > 0)
      fail("checksum can't be specified for multiple sources");
    const s0 = instr.sources[0]!;
    if (!isHttpSource(s0) && !parseGitRef(s0).ok) fail("checksum requires HTTP(S) or Git sources");
  }
  const link = instr.link && instr.chmod === "";
  const owner: ChownSpec | undefined = instr.chown
    ? parseChown(instr.chown, link ? d.state : undefined)
    : undefined;

  let msg = isAdd ? "ADD" : "COPY";
  if (parents) msg += " --parents";
  if (instr.chown) msg += ` --chown=${instr.chown}`;
  if (instr.chmod) msg += ` --chmod=${instr.chmod}`;

  const env = stateEnv(d);
  const name = uppercaseCmd(processCmdEnv(c.shlex, instr.original, env));
  const pgName = c.conv.prefixCommand(d, name, platform, env);

  let a: FileAction | undefined;
  const add = (from: State, src: string, o: CopyOptions) => {
    a = a ? a.copy(from, src, dest, o) : copyAction(from, src, dest, o);
  };
  const base: CopyOptions = { owner, ...chmod, excludePatterns };

  for (const src0 of instr.sources) {
    let src = src0;
    msg += ` ${src}`;
    const gr = parseGitRef(src);
    if (!gr.ok && gr.isGit) fail(gr.error ?? `invalid git reference ${src}`);
    if (gr.ok && !gr.ref.indistinguishableFromLocal) {
      if (!isAdd) fail("source can't be a git ref for COPY");
      const ref = gr.ref;
      const add0 = instr as AddInstruction;
      let keepGitDir = add0.keepGitDir;
      if (keepGitDir !== undefined && ref.keepGitDir !== undefined && keepGitDir !== ref.keepGitDir)
        fail("inconsistent keep-git-dir configuration");
      if (ref.keepGitDir !== undefined) keepGitDir = ref.keepGitDir;
      if (checksum !== "" && ref.checksum !== "" && checksum !== ref.checksum)
        fail(`checksum mismatch ${JSON.stringify(checksum)} != ${JSON.stringify(ref.checksum)}`);
      if (ref.checksum !== "") checksum = ref.checksum;
      const st = gitSource(ref.remote, "", {
        description: pgName,
        ref: ref.ref || undefined,
        subdir: ref.subdir || undefined,
        keepGitDir: !!keepGitDir,
        checksum: checksum || undefined,
        skipSubmodules: ref.submodules === false || undefined,
        fetchByCommit: ref.fetchByCommit || undefined,
        mtime: ref.mtime,
      });
      add(st, "/", { ...base, createDestPath: true });
    } else if (isHttpSource(src)) {
      if (!isAdd) fail("source can't be a URL for COPY");
      let f = "__unnamed__";
      try {
        const u = new URL(src);
        const b = posix.basename(u.pathname);
        if (b !== "." && b !== "/" && b !== "") f = decodeURIComponent(b);
      } catch {
        // keep the default name
      }
      if (checksum !== "" && !isDigest(checksum)) fail(`invalid checksum digest format`);
      const st = httpSource(src, { filename: f, checksum: checksum || undefined, description: pgName });
      const unpack = (instr as AddInstruction).unpack ?? false;
      add(st, f, { ...base, createDestPath: true, attemptUnpack: unpack });
    } else {
      validateCopySourcePath(src, isAdd, instr.location, c, lint);
      let patterns: string[] | undefined;
      let requiredPaths: string[] | undefined;
      if (parents) {
        const pivot = src.indexOf("/./");
        let pattern: string;
        if (pivot < 0) {
          pattern = src;
          src = "/";
        } else {
          pattern = src.slice(pivot + 3);
          src = src.slice(0, pivot);
        }
        pattern = normalizePath("/", pattern, false);
        patterns = [pattern.replace(/^\//, "")];
        if (!containsWildcards(src) && !containsWildcards(pattern))
          requiredPaths = [normalizePath("/", posix.join(src, pattern), false)];
      }
      src = normalizePath("/", src, false);
      const unpack = isAdd ? ((instr as AddInstruction).unpack ?? true) : false;
      add(source, src, {
        ...base,
        followSymlink: true,
        dirCopyContents: true,
        includePatterns: patterns,
        requiredPaths,
        attemptUnpack: unpack,
        createDestPath: true,
        allowWildcard: true,
        allowEmptyWildcard: true,
      });
    }
  }

  for (const sc of instr.heredocs) {
    msg += ` <<${sc.path}`;
    const st = scratch().file(mkfile(sc.path, 0o644, sc.data), {
      description: "[internal] preparing inline document",
    });
    add(st, sc.path, { ...base, createDestPath: true });
  }

  msg += ` ${instr.dest}`;

  if (instr.kind === "copy" && fromState === undefined) {
    for (const s of instr.sources) d.ctxPaths.add(cleanPath(posix.join("/", s)));
  } else if (instr.kind === "copy" && fromState) {
    for (const s of instr.sources) fromState.paths.add(cleanPath(posix.join("/", s)));
  } else if (isAdd) {
    for (const s of instr.sources)
      if (!s.startsWith("http://") && !s.startsWith("https://"))
        d.ctxPaths.add(cleanPath(posix.join("/", s)));
  }

  if (!a) fail(`${isAdd ? "ADD" : "COPY"} has no sources`);
  const locs = locations(d, instr.location, c);
  const ignoreCache = d.ignoreCache || undefined;
  if (link) {
    d.cmdIndex--;
    const pg = c.conv.prefixCommand(d, name, platform, env);
    d.cmdIndex--;
    const linkName = c.conv.prefixCommand(d, `LINK ${name}`, platform, env);
    const groupId = `link:${d.stageName || "stage"}:${instr.location.startLine}`;
    const copied = scratch().file(a, {
      description: pg,
      locations: locs,
      ignoreCache,
      progressGroup: groupId,
    });
    const merged = merge([d.state, copied], {
      description: linkName,
      locations: locs,
      ignoreCache,
      progressGroup: groupId,
    });
    d.state = merged.isScratch ? d.state : d.state.withOutputOf(merged);
  } else {
    d.state = d.state.file(a, { description: pgName, locations: locs, ignoreCache });
  }
  commitToHistory(d.image, msg, true, true, c.epoch);
}
