// The typed Dockerfile instruction model (BuildKit's frontend/dockerfile/instructions), and the
// signatures of the front end's parse entry points. This file is a contract with the
// Dockerfile→LLB converter: fields may be added, never renamed or removed.
//
// Values here are as written in the Dockerfile: no variable expansion has happened yet (the
// converter expands with ShellLex in the scope of each instruction), except where noted.

import type { Node, ParseOptions, ParseResult, SourceLocation } from "../parser/ast.js";

export type {
  Heredoc,
  Node,
  ParseOptions,
  ParseResult,
  ParseWarning,
  SourceLocation,
} from "../parser/ast.js";
export { DockerfileError } from "../parser/errors.js";

/** Every instruction keyword, lower-cased. */
export type InstructionKind =
  | "add"
  | "arg"
  | "cmd"
  | "copy"
  | "entrypoint"
  | "env"
  | "expose"
  | "from"
  | "healthcheck"
  | "label"
  | "maintainer"
  | "onbuild"
  | "run"
  | "shell"
  | "stopsignal"
  | "user"
  | "volume"
  | "workdir";

export const INSTRUCTION_KINDS: readonly InstructionKind[] = [
  "add",
  "arg",
  "cmd",
  "copy",
  "entrypoint",
  "env",
  "expose",
  "from",
  "healthcheck",
  "label",
  "maintainer",
  "onbuild",
  "run",
  "shell",
  "stopsignal",
  "user",
  "volume",
  "workdir",
];

/** What every instruction carries. */
export interface InstructionBase {
  readonly kind: InstructionKind;
  /** The keyword as written (`RUN`, `run`, `Run`): for the ConsistentInstructionCasing check. */
  readonly keyword: string;
  /** Lines the instruction spans, heredoc bodies included. */
  readonly location: SourceLocation;
  /** The instruction's logical line, continuation-joined and trimmed (BuildKit's String()). */
  readonly original: string;
  /** Comment lines directly above (without `#`). */
  readonly comments: readonly string[];
  /** The flags as written (`--from=build`), in order. */
  readonly flags: readonly string[];
  /** The AST node this came from. */
  readonly node: Node;
}

/** A key/value pair of ENV or LABEL. */
export interface KeyValuePair {
  readonly key: string;
  readonly value: string;
  /** True for the legacy `ENV key value` form (no `=`): the LegacyKeyValueFormat check. */
  readonly noDelim: boolean;
}

/** One ARG declaration: `ARG name` or `ARG name=default`. */
export interface ArgDeclaration {
  readonly key: string;
  /** Undefined for `ARG name` (no default). */
  readonly value: string | undefined;
  /** The doc comment line `# NAME description` above the ARG, if any (the description part). */
  readonly docComment: string;
}

/**
 * A command line of RUN/CMD/ENTRYPOINT: shell form (to be run by the current SHELL) or exec
 * (JSON) form.
 */
export type CommandLine =
  | { readonly form: "shell"; readonly text: string }
  | { readonly form: "exec"; readonly args: readonly string[] };

/** An inline file of RUN (`RUN <<EOF`): BuildKit's ShellInlineFile. */
export interface ShellInlineFile {
  readonly name: string;
  /** Raw content, leading tabs not yet removed when `chomp`. */
  readonly data: string;
  readonly chomp: boolean;
  /** False when the delimiter was quoted. */
  readonly expand: boolean;
  readonly fileDescriptor: number;
}

/** A heredoc source of COPY/ADD (`COPY <<EOF /dst`): BuildKit's SourceContent. */
export interface SourceContent {
  /** The heredoc name, used as the file name. */
  readonly path: string;
  /** The content, leading tabs already removed for `<<-`. */
  readonly data: string;
  /** False when the delimiter was quoted (no variable expansion of the content). */
  readonly expand: boolean;
}

export type MountType = "bind" | "cache" | "tmpfs" | "secret" | "ssh";
export type MountSharing = "shared" | "private" | "locked";

/** A parsed `RUN --mount=…` spec (BuildKit's instructions.Mount). */
export interface MountSpec {
  readonly type: MountType;
  /** `from=`: a stage name or image; "" for the build context (bind) / nothing. */
  readonly from: string;
  /** `source=`/`src=`. */
  readonly source: string;
  /** `target=`/`dst=`/`destination=`. */
  readonly target: string;
  /** Explicit `ro`/`rw`, or the type's default (bind/secret/ssh read-only; cache/tmpfs writable). */
  readonly readOnly: boolean;
  /** `size=` of a tmpfs in bytes; 0 = unset. */
  readonly sizeLimit: number;
  /** `id=`: cache id, or secret/ssh id. */
  readonly id: string;
  /** `sharing=` ("" when not given; the converter defaults it to shared). */
  readonly sharing: MountSharing | "";
  /** `required` (secret and ssh only). */
  readonly required: boolean;
  /** `env=`: secret exposed as this env var; "" = the default name; undefined = not as env. */
  readonly env: string | undefined;
  /** `mode=` (octal), `uid=`, `gid=`; secret, ssh and cache only. */
  readonly mode: number | undefined;
  readonly uid: number | undefined;
  readonly gid: number | undefined;
}

export type NetworkMode = "default" | "none" | "host";
export type SecurityMode = "sandbox" | "insecure";

/** A `RUN --device=…` spec. */
export interface DeviceSpec {
  readonly name: string;
  readonly required: boolean;
}

// ---------- the instructions ----------

export interface FromInstruction extends InstructionBase {
  readonly kind: "from";
  /** The base image or stage name, as written (may contain ARG references). */
  readonly image: string;
  /** `--platform=` as written, if given. */
  readonly platform: string | undefined;
  /** The stage name after AS, lower-cased; undefined when unnamed. */
  readonly stageName: string | undefined;
  /** The stage name as written (for the StageNameCasing check). */
  readonly stageNameOriginal: string | undefined;
  /** The AS keyword as written (for the FromAsCasing check). */
  readonly asKeyword: string | undefined;
  /** Doc comment `# NAME description` above the FROM, if any. */
  readonly docComment: string;
}

/** BuildKit's ShellDependantCmdLine, for converters that want it verbatim. */
export interface CmdLineFields {
  /** Exec form: the JSON strings; shell form: one string, the arguments joined (or none). */
  readonly cmdLine: readonly string[];
  /** True for shell form: the current SHELL goes in front of cmdLine. */
  readonly prependShell: boolean;
}

export interface RunInstruction extends InstructionBase, CmdLineFields {
  readonly kind: "run";
  readonly command: CommandLine;
  /** The raw `--mount` values, in order: re-parse with `parseMount(spec, expand)` after expansion. */
  readonly mountSpecs: readonly string[];
  /**
   * The mounts as far as they are known before expansion. A spec without `$` is fully parsed and
   * validated here (quotes and escapes processed as expansion would). A spec with variables gets
   * BuildKit's parse-time check only and a literal best-effort parse: call `expandRunMounts` with
   * the stage's expander for the final values (BuildKit re-parses every spec at conversion).
   */
  readonly mounts: readonly MountSpec[];
  /** `--network=` (default "default"); may not hold variables. */
  readonly network: NetworkMode;
  /** `--security=` (default "sandbox"). */
  readonly security: SecurityMode;
  /** `--device=` specs. */
  readonly devices: readonly DeviceSpec[];
  /** Inline files from heredocs, in order. */
  readonly heredocs: readonly ShellInlineFile[];
  /** Names of the flags given (BuildKit's FlagsUsed), e.g. ["mount", "network"]. */
  readonly flagsUsed: readonly string[];
}

interface CopyLike extends InstructionBase {
  /** File sources (not heredocs), as written. */
  readonly sources: readonly string[];
  /** Heredoc sources, in order. */
  readonly heredocs: readonly SourceContent[];
  readonly dest: string;
  /** `--chown=` ("" when absent). */
  readonly chown: string;
  /** `--chmod=` ("" when absent). */
  readonly chmod: string;
  readonly link: boolean;
  /** `--exclude=` patterns. */
  readonly exclude: readonly string[];
}

export interface CopyInstruction extends CopyLike {
  readonly kind: "copy";
  /** `--from=` ("" when absent). */
  readonly from: string;
  readonly parents: boolean;
}

export interface AddInstruction extends CopyLike {
  readonly kind: "add";
  /** `--checksum=` ("" when absent). */
  readonly checksum: string;
  /** `--keep-git-dir`; undefined when not given. */
  readonly keepGitDir: boolean | undefined;
  /** `--unpack`; undefined when not given. */
  readonly unpack: boolean | undefined;
}

export interface EnvInstruction extends InstructionBase {
  readonly kind: "env";
  readonly pairs: readonly KeyValuePair[];
}

export interface LabelInstruction extends InstructionBase {
  readonly kind: "label";
  readonly pairs: readonly KeyValuePair[];
}

export interface ArgInstruction extends InstructionBase {
  readonly kind: "arg";
  readonly args: readonly ArgDeclaration[];
}

export interface CmdInstruction extends InstructionBase, CmdLineFields {
  readonly kind: "cmd";
  readonly command: CommandLine;
}

export interface EntrypointInstruction extends InstructionBase, CmdLineFields {
  readonly kind: "entrypoint";
  /** `ENTRYPOINT []` gives `{form: "exec", args: []}`. */
  readonly command: CommandLine;
}

export interface ShellInstruction extends InstructionBase {
  readonly kind: "shell";
  readonly shell: readonly string[];
}

export interface WorkdirInstruction extends InstructionBase {
  readonly kind: "workdir";
  readonly path: string;
}

export interface UserInstruction extends InstructionBase {
  readonly kind: "user";
  readonly user: string;
}

export interface ExposeInstruction extends InstructionBase {
  readonly kind: "expose";
  /** Port specs as written, sorted (BuildKit sorts them). */
  readonly ports: readonly string[];
}

export interface VolumeInstruction extends InstructionBase {
  readonly kind: "volume";
  readonly volumes: readonly string[];
}

export interface StopSignalInstruction extends InstructionBase {
  readonly kind: "stopsignal";
  readonly signal: string;
}

/** Docker's HealthConfig; durations in nanoseconds, 0 = inherit/default. */
export interface HealthcheckConfig {
  /** `["NONE"]`, `["CMD", arg…]` or `["CMD-SHELL", command]`. */
  readonly test: readonly string[];
  readonly interval: number;
  readonly timeout: number;
  readonly startPeriod: number;
  readonly startInterval: number;
  /** 0 = inherit/default. */
  readonly retries: number;
}

export interface HealthcheckInstruction extends InstructionBase {
  readonly kind: "healthcheck";
  /** True for `HEALTHCHECK NONE` (then `health.test` is `["NONE"]`). */
  readonly none: boolean;
  readonly health: HealthcheckConfig;
}

export interface OnbuildInstruction extends InstructionBase {
  readonly kind: "onbuild";
  /** The trigger instruction's text (`RUN echo hi`), heredoc bodies appended as BuildKit does. */
  readonly expression: string;
}

export interface MaintainerInstruction extends InstructionBase {
  readonly kind: "maintainer";
  readonly maintainer: string;
}

export type Instruction =
  | FromInstruction
  | RunInstruction
  | CopyInstruction
  | AddInstruction
  | EnvInstruction
  | LabelInstruction
  | ArgInstruction
  | CmdInstruction
  | EntrypointInstruction
  | ShellInstruction
  | WorkdirInstruction
  | UserInstruction
  | ExposeInstruction
  | VolumeInstruction
  | StopSignalInstruction
  | HealthcheckInstruction
  | OnbuildInstruction
  | MaintainerInstruction;

/** Instructions that can appear inside a stage (all but FROM). */
export type StageInstruction = Exclude<Instruction, FromInstruction>;

/** A build stage: a FROM and the instructions up to the next FROM. */
export interface Stage {
  /** Lower-cased stage name; "" when unnamed. */
  readonly name: string;
  readonly from: FromInstruction;
  readonly commands: StageInstruction[];
}

/** The whole Dockerfile as stages, plus the ARGs before the first FROM. */
export interface DockerfileInstructions {
  readonly parse: ParseResult;
  readonly metaArgs: readonly ArgInstruction[];
  readonly stages: readonly Stage[];
}

/** A lint finding raised while parsing instructions (BuildKit's linter hooks). */
export interface LintFinding {
  /** Rule name, e.g. `MaintainerDeprecated`, `StageNameCasing`, `FromAsCasing`. */
  readonly rule: string;
  readonly message: string;
  readonly location: SourceLocation;
  /** BuildKit marks some rules experimental (off unless enabled). */
  readonly experimental?: boolean;
}

export interface InstructionParseOptions {
  /** File name for errors; default taken from the ParseResult or `Dockerfile`. */
  readonly fileName?: string;
  /** The file's lines, to put the offending line in errors. */
  readonly lines?: readonly string[];
  /** The file's escape token (from the ParseResult); default `\\`. */
  readonly escapeToken?: string;
  /** Receives lint findings (MaintainerDeprecated, StageNameCasing, FromAsCasing, InvalidDefinitionDescription). */
  readonly onLint?: (finding: LintFinding) => void;
}

/** Expands one word (the converter's ShellLex + scope); may throw. */
export type WordExpander = (word: string) => string;

// ---------- entry points (implemented in parser/ and instructions/) ----------

/** parser/parser.ts: Dockerfile text → AST. Throws DockerfileError. */
export type ParseDockerfileFn = (text: string, options?: ParseOptions) => ParseResult;
/** parser/dump.ts: the AST dump of the conformance format. Throws DockerfileError. */
export type DumpAstFn = (text: string) => string;
/** parser/dump.ts: the same, reading a file. */
export type DumpAstFileFn = (path: string) => Promise<string>;
/** instructions/parse.ts: one AST node → typed instruction. Throws DockerfileError. */
export type ParseInstructionFn = (node: Node, options?: InstructionParseOptions) => Instruction;
/** instructions/parse.ts: the whole AST → stages and meta ARGs. Throws DockerfileError. */
export type ParseInstructionsFn = (
  parse: ParseResult,
  options?: InstructionParseOptions,
) => DockerfileInstructions;
/** instructions/mount.ts: one `--mount` value → MountSpec; with `expand`, values are expanded first. */
export type ParseMountFn = (spec: string, expand?: WordExpander) => MountSpec;
/** instructions/mount.ts: the RUN's mounts after expanding variables. Throws DockerfileError. */
export type ExpandRunMountsFn = (run: RunInstruction, expand: WordExpander) => MountSpec[];
