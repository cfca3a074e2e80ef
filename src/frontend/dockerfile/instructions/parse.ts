// AST node → typed instruction, with flag parsing and validation, as BuildKit's instructions
// package does it (same checks, same order, same messages), plus the grouping into stages.

import { type Heredoc, nodeArgs, type ParseResult } from "../parser/ast.js";
import { equalFoldAscii, goToLower, goToUpper } from "../parser/case.js";
import { trimSpace } from "../parser/directives.js";
import { DockerfileError, sourceText, suggestClosest } from "../parser/errors.js";
import { chompHeredocContent, mustParseHeredoc } from "../parser/heredoc.js";
import { emptyEnv, ShellLex } from "../shell/lex.js";
import { goQuote } from "../shell/quote.js";
import { DurationError, formatGoDuration, parseGoDuration } from "./duration.js";
import { type Flag, InstructionFlags } from "./flags.js";
import { csvFields, parseGoBool as parseBoolStrict, parseMount } from "./mount.js";
import {
  type AddInstruction,
  type ArgDeclaration,
  type ArgInstruction,
  type CmdInstruction,
  type CmdLineFields,
  type CommandLine,
  type CopyInstruction,
  type DeviceSpec,
  type DockerfileInstructions,
  type EntrypointInstruction,
  type EnvInstruction,
  type ExposeInstruction,
  type FromInstruction,
  type HealthcheckConfig,
  type HealthcheckInstruction,
  INSTRUCTION_KINDS,
  type Instruction,
  type InstructionBase,
  type InstructionKind,
  type InstructionParseOptions,
  type KeyValuePair,
  type LabelInstruction,
  type LintFinding,
  type MaintainerInstruction,
  type MountSpec,
  type NetworkMode,
  type Node,
  type OnbuildInstruction,
  type RunInstruction,
  type SecurityMode,
  type ShellInlineFile,
  type ShellInstruction,
  type SourceContent,
  type Stage,
  type StageInstruction,
  type StopSignalInstruction,
  type UserInstruction,
  type VolumeInstruction,
  type WorkdirInstruction,
} from "./types.js";

interface ParseRequest {
  readonly node: Node;
  /** The keyword as written. */
  readonly command: string;
  readonly args: string[];
  readonly heredocs: readonly Heredoc[];
  readonly json: boolean;
  readonly flags: InstructionFlags;
  readonly original: string;
  readonly comments: readonly string[];
  readonly options: InstructionParseOptions;
}

function fail(message: string, suggestion?: string): never {
  throw new DockerfileError({ message, suggestion });
}

const errAtLeastOneArgument = (c: string) => fail(`${c} requires at least one argument`);
const errExactlyOneArgument = (c: string) => fail(`${c} requires exactly one argument`);
const errNoDestinationArgument = (c: string) =>
  fail(
    `${c} requires at least two arguments, but only one was provided. Destination could not be determined`,
  );
const errBlankCommandNames = (c: string) => fail(`${c} names can not be blank`);

// (Instructions are built with Object.assign onto this: object spread is many times slower in V8.)
function base<K extends InstructionKind>(req: ParseRequest, kind: K): InstructionBase & { kind: K } {
  return {
    kind,
    keyword: req.command,
    location: { startLine: req.node.startLine, endLine: req.node.endLine },
    original: trimSpace(req.original),
    comments: req.comments,
    flags: req.node.flags,
    node: req.node,
  };
}

function lint(req: ParseRequest, rule: string, message: string, experimental = false): void {
  const finding: LintFinding = {
    rule,
    message,
    location: { startLine: req.node.startLine, endLine: req.node.endLine },
    experimental,
  };
  req.options.onLint?.(finding);
}

/** handleJSONArgs + the typed command line. */
function commandLine(
  req: ParseRequest,
  args: string[],
  emptyAsNil: boolean,
): CmdLineFields & { command: CommandLine } {
  let cmdLine: string[];
  if (args.length === 0) cmdLine = [];
  else if (req.json) cmdLine = args;
  else cmdLine = [args.join(" ")];
  if (emptyAsNil && cmdLine.length === 0) cmdLine = [];
  const command: CommandLine = req.json
    ? { form: "exec", args: cmdLine }
    : { form: "shell", text: cmdLine[0] ?? "" };
  return { cmdLine, prependShell: !req.json, command };
}

function parseKvps(args: string[], cmdName: string): KeyValuePair[] {
  if (args.length === 0) errAtLeastOneArgument(cmdName);
  if (args.length % 3 !== 0) fail(`Bad input to ${cmdName}, too many arguments`);
  const res: KeyValuePair[] = [];
  for (let j = 0; j < args.length; j += 3) {
    if (args[j]!.length === 0) errBlankCommandNames(cmdName);
    res.push({ key: args[j]!, value: args[j + 1]!, noDelim: args[j + 2] === "" });
  }
  return res;
}

function parseEnv(req: ParseRequest): EnvInstruction {
  req.flags.parse();
  return Object.assign(base(req, "env"), { pairs: parseKvps(req.args, "ENV") });
}

function parseMaintainer(req: ParseRequest): MaintainerInstruction {
  if (req.args.length !== 1) errExactlyOneArgument("MAINTAINER");
  req.flags.parse();
  return Object.assign(base(req, "maintainer"), { maintainer: req.args[0]! });
}

function parseLabel(req: ParseRequest): LabelInstruction {
  req.flags.parse();
  return Object.assign(base(req, "label"), { pairs: parseKvps(req.args, "LABEL") });
}

function parseSourcesAndDest(
  req: ParseRequest,
  command: string,
): { sources: string[]; heredocs: SourceContent[]; dest: string } {
  const srcs = req.args.slice(0, -1);
  const dest = req.args[req.args.length - 1]!;
  if (mustParseHeredoc(dest)) fail(`${command} cannot accept a heredoc as a destination`);
  const lookup = new Map<string, Heredoc>();
  for (const h of req.heredocs) lookup.set(h.name, h);
  const sources: string[] = [];
  const heredocs: SourceContent[] = [];
  for (const src of srcs) {
    const h = mustParseHeredoc(src);
    if (h) {
      let content = lookup.get(h.name)?.content ?? "";
      if (h.chomp) content = chompHeredocContent(content);
      heredocs.push({ path: h.name, data: content, expand: h.expand });
    } else {
      sources.push(src);
    }
  }
  return { sources, heredocs, dest };
}

function parseAdd(req: ParseRequest): AddInstruction {
  if (req.args.length < 2) errNoDestinationArgument("ADD");
  const flChown = req.flags.addString("chown", "");
  const flChmod = req.flags.addString("chmod", "");
  const flLink = req.flags.addBool("link", false);
  const flKeepGitDir = req.flags.addBool("keep-git-dir", false);
  const flChecksum = req.flags.addString("checksum", "");
  const flUnpack = req.flags.addBool("unpack", false);
  const flExcludes = req.flags.addStrings("exclude");
  req.flags.parse();
  const sd = parseSourcesAndDest(req, "ADD");
  return Object.assign(base(req, "add"), {
    sources: sd.sources,
    heredocs: sd.heredocs,
    dest: sd.dest,
    chown: flChown.value,
    chmod: flChmod.value,
    link: flLink.isTrue(),
    exclude: flExcludes.stringValues,
    checksum: flChecksum.value,
    keepGitDir: req.flags.isUsed("keep-git-dir") ? flKeepGitDir.isTrue() : undefined,
    unpack: req.flags.isUsed("unpack") ? flUnpack.isTrue() : undefined,
  });
}

function parseCopy(req: ParseRequest): CopyInstruction {
  if (req.args.length < 2) errNoDestinationArgument("COPY");
  const flChown = req.flags.addString("chown", "");
  const flFrom = req.flags.addString("from", "");
  const flChmod = req.flags.addString("chmod", "");
  const flLink = req.flags.addBool("link", false);
  const flExcludes = req.flags.addStrings("exclude");
  const flParents = req.flags.addBool("parents", false);
  req.flags.parse();
  const sd = parseSourcesAndDest(req, "COPY");
  return Object.assign(base(req, "copy"), {
    sources: sd.sources,
    heredocs: sd.heredocs,
    dest: sd.dest,
    from: flFrom.value,
    chown: flChown.value,
    chmod: flChmod.value,
    link: flLink.isTrue(),
    parents: flParents.isTrue(),
    exclude: flExcludes.stringValues,
  });
}

const validStageName = /^[a-z][a-z0-9-_.]*$/;

function getDocComment(comments: readonly string[], name: string): string {
  if (name === "") return "";
  for (const line of comments) {
    if (line.startsWith(name + " ")) return line.slice(name.length + 1);
  }
  return "";
}

function validateDefinitionDescription(req: ParseRequest, instruction: string, keys: string[]): void {
  if (req.comments.length === 0 || keys.length === 0) return;
  const first = req.comments[req.comments.length - 1]!.split(" ")[0]!;
  if (keys.includes(first)) return;
  const example = keys.length > 1 ? "<arg_key>" : keys[0]!;
  lint(
    req,
    "InvalidDefinitionDescription",
    `Comment for ${instruction} should follow the format: \`# ${example} <description>\``,
    true,
  );
}

function parseFrom(req: ParseRequest): FromInstruction {
  const args = req.args;
  // lint checks run before validation, as in BuildKit
  if (args.length === 3 && args[2] !== goToLower(args[2]!)) {
    lint(req, "StageNameCasing", `Stage name '${args[2]}' should be lowercase`);
  }
  if (args.length >= 3) {
    const lower = req.command === goToLower(req.command);
    const upper = req.command === goToUpper(req.command);
    if ((lower && args[1] !== goToLower(args[1]!)) || (!lower && upper && args[1] !== goToUpper(args[1]!))) {
      lint(req, "FromAsCasing", `'${args[1]}' and '${req.command}' keywords' casing do not match`);
    }
  }

  let stageName = "";
  if (args.length === 3 && equalFoldAscii(args[1]!, "as")) {
    stageName = goToLower(args[2]!);
    if (!validStageName.test(stageName)) {
      fail(
        `invalid name for build stage: ${goQuote(args[2])}, name can't start with a number or contain symbols`,
      );
    }
  } else if (args.length !== 1) {
    fail("FROM requires either one or three arguments");
  }
  const flPlatform = req.flags.addString("platform", "");
  req.flags.parse();
  if (stageName !== "") validateDefinitionDescription(req, "FROM", [stageName]);
  return Object.assign(base(req, "from"), {
    image: args[0]!,
    platform: req.flags.isUsed("platform") ? flPlatform.value : undefined,
    stageName: stageName === "" ? undefined : stageName,
    stageNameOriginal: stageName === "" ? undefined : args[2],
    asKeyword: stageName === "" ? undefined : args[1],
    docComment: getDocComment(req.comments, stageName),
  });
}

const onbuildPrefix = /^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*/i;

function parseOnBuild(req: ParseRequest): OnbuildInstruction {
  if (req.args.length === 0) errAtLeastOneArgument("ONBUILD");
  req.flags.parse();
  const trigger = goToUpper(trimSpace(req.args[0]!));
  switch (trigger) {
    case "ONBUILD":
      fail("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
      break;
    case "MAINTAINER":
    case "FROM":
      fail(`${trigger} isn't allowed as an ONBUILD trigger`);
  }
  let expression = req.original.replace(onbuildPrefix, "");
  for (const h of req.heredocs) expression += `\n${h.content}${h.name}`;
  return Object.assign(base(req, "onbuild"), { expression });
}

function parseWorkdir(req: ParseRequest): WorkdirInstruction {
  if (req.args.length !== 1) errExactlyOneArgument("WORKDIR");
  req.flags.parse();
  return Object.assign(base(req, "workdir"), { path: req.args[0]! });
}

function inlineFiles(req: ParseRequest): ShellInlineFile[] {
  return req.heredocs.map((h) => ({
    name: h.name,
    data: h.content,
    chomp: h.chomp,
    expand: h.expand,
    fileDescriptor: h.fileDescriptor,
  }));
}

const NETWORK_MODES: readonly NetworkMode[] = ["default", "none", "host"];
const SECURITY_MODES: readonly SecurityMode[] = ["sandbox", "insecure"];

/** BuildKit's ParseDevice: `name[,required[=bool]]` or `name=…`. */
export function parseDevice(spec: string, csv: (s: string) => string[]): DeviceSpec {
  let fields: string[];
  try {
    fields = csv(spec);
  } catch (e) {
    fail(`failed to parse csv devices: ${(e as Error).message}`);
  }
  let name = "";
  let required = false;
  for (const field of fields) {
    const eq = field.indexOf("=");
    const key = goToLower(eq < 0 ? field : field.slice(0, eq));
    const value = eq < 0 ? "" : field.slice(eq + 1);
    if (eq < 0) {
      if (key === "required") {
        required = true;
        continue;
      }
      if (name === "") {
        name = field;
        continue;
      }
      fail(`invalid field '${field}' must be a key=value pair`);
    }
    switch (key) {
      case "name":
        if (name !== "") fail(`device name already set to ${name}`);
        name = value;
        break;
      case "required": {
        const b = parseBoolStrict(value);
        if (b === undefined) fail(`invalid value for ${key}: ${value}`);
        required = b;
        break;
      }
      default:
        if (name === "") {
          name = field;
          continue;
        }
        {
          const m = suggestClosest(key, ["name", "required"], true);
          fail(`unexpected key '${key}' in '${field}'`, m ? `did you mean ${m}?` : undefined);
        }
    }
  }
  return { name, required };
}

function parseRun(req: ParseRequest): RunInstruction {
  const flMount = req.flags.addStrings("mount");
  const flNetwork = req.flags.addString("network", "default");
  const flSecurity = req.flags.addString("security", "sandbox");
  const flDevice = req.flags.addStrings("device");
  req.flags.parse();
  const flagsUsed = req.flags.usedNames();
  const cl = commandLine(req, req.args, false);

  // post hooks, in BuildKit's (file name) order: device, mount, network, security
  const devices = flDevice.stringValues.map((s) => parseDevice(s, csvFields));
  const mountSpecs = flMount.stringValues;
  const mounts = mountSpecs.map((s) => preparseMount(s, req.options.escapeToken ?? "\\"));
  if (!(NETWORK_MODES as readonly string[]).includes(flNetwork.value)) {
    fail(`invalid network mode ${goQuote(flNetwork.value)}`, `one of: ${NETWORK_MODES.join(", ")}`);
  }
  if (!(SECURITY_MODES as readonly string[]).includes(flSecurity.value)) {
    fail(`security ${goQuote(flSecurity.value)} is not valid`, `one of: ${SECURITY_MODES.join(", ")}`);
  }
  return Object.assign(base(req, "run"), {
    command: cl.command,
    cmdLine: cl.cmdLine,
    prependShell: cl.prependShell,
    mountSpecs,
    mounts,
    network: flNetwork.value as NetworkMode,
    security: flSecurity.value as SecurityMode,
    devices,
    heredocs: inlineFiles(req),
    flagsUsed,
  });
}

/**
 * A mount as far as it can be known before expansion: BuildKit's parse-time check, then — for
 * specs without variables — the full check with quotes and escapes processed as the converter's
 * expansion will (so an invalid literal spec fails here, at parse time). Specs with variables
 * are parsed literally where possible; the converter re-parses them with expandRunMounts.
 */
function preparseMount(spec: string, escapeToken: string): MountSpec {
  const deferred = parseMount(spec);
  const lex = new ShellLex(escapeToken);
  if (!spec.includes("$")) {
    return parseMount(spec, (w) => lex.processWord(w, emptyEnv));
  }
  try {
    return parseMount(spec, (w) => w);
  } catch {
    return deferred;
  }
}

function parseCmd(req: ParseRequest): CmdInstruction {
  req.flags.parse();
  const cl = commandLine(req, req.args, false);
  return Object.assign(base(req, "cmd"), {
    command: cl.command,
    cmdLine: cl.cmdLine,
    prependShell: cl.prependShell,
  });
}

function parseEntrypoint(req: ParseRequest): EntrypointInstruction {
  req.flags.parse();
  const cl = commandLine(req, req.args, true);
  return Object.assign(base(req, "entrypoint"), {
    command: cl.command,
    cmdLine: cl.cmdLine,
    prependShell: cl.prependShell,
  });
}

function parseOptInterval(f: Flag): number {
  const s = f.value;
  if (s === "") return 0;
  let d: number;
  try {
    d = parseGoDuration(s);
  } catch (e) {
    if (e instanceof DurationError) fail(e.message);
    throw e;
  }
  if (d === 0) return 0;
  if (d < 1e6) fail(`Interval ${goQuote(f.name)} cannot be less than ${formatGoDuration(1e6)}`);
  return d;
}

/** Go's strconv.ParseInt(s, 10, 32). */
function parseInt32(s: string): number {
  if (!/^[+-]?[0-9]+$/.test(s)) fail(`strconv.ParseInt: parsing ${goQuote(s)}: invalid syntax`);
  const n = Number.parseInt(s, 10);
  if (n > 2147483647 || n < -2147483648) {
    fail(`strconv.ParseInt: parsing ${goQuote(s)}: value out of range`);
  }
  return n;
}

function parseHealthcheck(req: ParseRequest): HealthcheckInstruction {
  if (req.args.length === 0) errAtLeastOneArgument("HEALTHCHECK");
  const b = base(req, "healthcheck");
  let typ = goToUpper(req.args[0]!);
  const args = req.args.slice(1);
  if (typ === "NONE") {
    if (args.length !== 0) fail("HEALTHCHECK NONE takes no arguments");
    return Object.assign(b, {
      none: true,
      health: { test: ["NONE"], interval: 0, timeout: 0, startPeriod: 0, startInterval: 0, retries: 0 },
    });
  }
  const flInterval = req.flags.addString("interval", "");
  const flTimeout = req.flags.addString("timeout", "");
  const flStartPeriod = req.flags.addString("start-period", "");
  const flStartInterval = req.flags.addString("start-interval", "");
  const flRetries = req.flags.addString("retries", "");
  req.flags.parse();

  let test: string[];
  if (typ === "CMD") {
    const cmdSlice = commandLine(req, args, false).cmdLine;
    if (cmdSlice.length === 0) fail("Missing command after HEALTHCHECK CMD");
    if (!req.json) typ = "CMD-SHELL";
    test = [typ, ...cmdSlice];
  } else {
    fail(`Unknown type ${goQuote(typ)} in HEALTHCHECK (try CMD)`);
  }
  const health: HealthcheckConfig = {
    test,
    interval: parseOptInterval(flInterval),
    timeout: parseOptInterval(flTimeout),
    startPeriod: parseOptInterval(flStartPeriod),
    startInterval: parseOptInterval(flStartInterval),
    retries: flRetries.value !== "" ? parseRetries(flRetries.value) : 0,
  };
  return Object.assign(b, { none: false, health });
}

function parseRetries(v: string): number {
  const n = parseInt32(v);
  if (n < 0) fail(`--retries cannot be negative (${n})`);
  return n;
}

function parseExpose(req: ParseRequest): ExposeInstruction {
  if (req.args.length === 0) errAtLeastOneArgument("EXPOSE");
  req.flags.parse();
  // Go's sort.Strings: byte-wise order
  const ports = [...req.args].sort(compareBytes);
  return Object.assign(base(req, "expose"), { ports });
}

function compareBytes(a: string, b: string): number {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return Buffer.compare(x, y);
}

function parseUser(req: ParseRequest): UserInstruction {
  if (req.args.length !== 1) errExactlyOneArgument("USER");
  req.flags.parse();
  return Object.assign(base(req, "user"), { user: req.args[0]! });
}

function parseVolume(req: ParseRequest): VolumeInstruction {
  if (req.args.length === 0) errAtLeastOneArgument("VOLUME");
  req.flags.parse();
  const volumes: string[] = [];
  for (const a of req.args) {
    const v = trimSpace(a);
    if (v === "") fail("VOLUME specified can not be an empty string");
    volumes.push(v);
  }
  return Object.assign(base(req, "volume"), { volumes });
}

function parseStopSignal(req: ParseRequest): StopSignalInstruction {
  // BuildKit does not check STOPSIGNAL's flags.
  if (req.args.length !== 1) errExactlyOneArgument("STOPSIGNAL");
  return Object.assign(base(req, "stopsignal"), { signal: req.args[0]! });
}

function parseArg(req: ParseRequest): ArgInstruction {
  // BuildKit does not check ARG's flags.
  if (req.args.length < 1) errAtLeastOneArgument("ARG");
  const args: ArgDeclaration[] = req.args.map((arg) => {
    const eq = arg.indexOf("=");
    if (eq >= 0) {
      if (eq === 0) errBlankCommandNames("ARG");
      const key = arg.slice(0, eq);
      return { key, value: arg.slice(eq + 1), docComment: getDocComment(req.comments, key) };
    }
    return { key: arg, value: undefined, docComment: getDocComment(req.comments, arg) };
  });
  validateDefinitionDescription(
    req,
    "ARG",
    args.map((a) => a.key),
  );
  return Object.assign(base(req, "arg"), { args });
}

function parseShell(req: ParseRequest): ShellInstruction {
  req.flags.parse();
  const shell = commandLine(req, req.args, false).cmdLine;
  if (shell.length === 0) errAtLeastOneArgument("SHELL");
  if (!req.json) fail("SHELL requires the arguments to be in JSON form");
  return Object.assign(base(req, "shell"), { shell });
}

const PARSERS: Readonly<Record<InstructionKind, (req: ParseRequest) => Instruction>> = {
  add: parseAdd,
  arg: parseArg,
  cmd: parseCmd,
  copy: parseCopy,
  entrypoint: parseEntrypoint,
  env: parseEnv,
  expose: parseExpose,
  from: parseFrom,
  healthcheck: parseHealthcheck,
  label: parseLabel,
  maintainer: (req) => {
    lint(req, "MaintainerDeprecated", "Maintainer instruction is deprecated in favor of using label");
    return parseMaintainer(req);
  },
  onbuild: parseOnBuild,
  run: parseRun,
  shell: parseShell,
  stopsignal: parseStopSignal,
  user: parseUser,
  volume: parseVolume,
  workdir: parseWorkdir,
};

function withLocation(e: unknown, node: Node, options: InstructionParseOptions): never {
  if (e instanceof DockerfileError) {
    const line = e.line > 0 ? e.line : node.startLine;
    const endLine = e.line > 0 ? e.endLine : node.endLine;
    throw new DockerfileError({
      message: e.detail,
      fileName: options.fileName ?? e.fileName,
      line,
      endLine,
      lineText:
        e.lineText || (options.lines ? sourceText(options.lines, line, endLine) : trimSpace(node.original)),
      suggestion: e.suggestion,
      cause: e.cause,
    });
  }
  throw e;
}

/** One instruction node → typed instruction. Throws DockerfileError. */
export function parseInstruction(node: Node, options: InstructionParseOptions = {}): Instruction {
  try {
    const kind = goToLower(node.value);
    if (!(INSTRUCTION_KINDS as readonly string[]).includes(kind)) {
      const names = INSTRUCTION_KINDS.map((k) => k.toUpperCase());
      const m = suggestClosest(node.value, names, false);
      fail(`unknown instruction: ${node.value}`, m ? `did you mean ${m}?` : undefined);
    }
    const req: ParseRequest = {
      node,
      command: node.value,
      args: nodeArgs(node),
      heredocs: node.heredocs,
      json: node.attributes.json === true,
      flags: new InstructionFlags(node.flags, kind.toUpperCase()),
      original: node.original,
      comments: node.prevComment,
      options,
    };
    return PARSERS[kind as InstructionKind](req);
  } catch (e) {
    return withLocation(e, node, options);
  }
}

/** The whole parsed Dockerfile → stages and meta ARGs. Throws DockerfileError. */
export function parseInstructions(
  parse: ParseResult,
  options: InstructionParseOptions = {},
): DockerfileInstructions {
  const opts: InstructionParseOptions = {
    fileName: parse.fileName,
    lines: parse.lines,
    escapeToken: parse.escapeToken,
    ...options,
  };
  const metaArgs: ArgInstruction[] = [];
  const stages: Stage[] = [];
  for (const n of parse.ast.children) {
    const cmd = parseInstruction(n, opts);
    if (stages.length === 0 && cmd.kind === "arg") {
      metaArgs.push(cmd);
      continue;
    }
    if (cmd.kind === "from") {
      stages.push({ name: cmd.stageName ?? "", from: cmd, commands: [] });
      continue;
    }
    const stage = stages[stages.length - 1];
    if (!stage) {
      withLocation(new DockerfileError({ message: "no build stage in current context" }), n, opts);
    }
    stage.commands.push(cmd as StageInstruction);
  }
  return { parse, metaArgs, stages };
}
