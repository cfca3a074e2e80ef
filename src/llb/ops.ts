// The LLB op model: the vertices of a build graph, as BuildKit's ops.proto shapes them.
// Every field here is part of a vertex's digest (see definition.ts); anything that must not
// change the digest (descriptions, progress grouping) lives in VertexMetadata instead.
import type { Digest } from "../oci/digest.js";
import type { Platform } from "../oci/platform.js";

/** One output of a vertex, used as an input of another. */
export interface OutputRef {
  readonly vertex: Digest;
  readonly index: number;
}

/** Mount input index meaning "no input": an empty (scratch) filesystem. */
export const SCRATCH = -1;
/** Mount output index meaning "this mount produces no output". */
export const SKIP_OUTPUT = -1;

// ---------- SourceOp ----------

/**
 * Where a source comes from, by identifier scheme, as in BuildKit:
 * `docker-image://REF`, `local://NAME`, `git://URL#ref`, `https://…`, `oci-layout://STORE@DIGEST`.
 */
export interface SourceOp {
  readonly kind: "source";
  readonly identifier: string;
  /** Scheme-specific attributes, e.g. `local.includepatterns`, `http.checksum`, `git.keepgitdir`. */
  readonly attrs: Readonly<Record<string, string>>;
}

// ---------- ExecOp ----------

export type NetworkMode = "sandbox" | "host" | "none";
export type SecurityMode = "sandbox" | "insecure";
export type CacheSharing = "shared" | "private" | "locked";

export interface ExecMeta {
  readonly args: readonly string[];
  readonly env: readonly string[];
  readonly cwd: string;
  readonly user: string;
  readonly hostname?: string;
  readonly extraHosts?: readonly { readonly host: string; readonly ip: string }[];
  readonly ulimits?: readonly { readonly name: string; readonly soft: number; readonly hard: number }[];
  readonly cgroupParent?: string;
  /** Env var names whose values come from secrets at run time (`RUN --mount=type=secret,env=…`). */
  readonly secretEnv?: readonly { readonly id: string; readonly name: string; readonly optional: boolean }[];
  readonly validExitCodes?: readonly number[];
  /**
   * Proxy settings from the predefined proxy build args (HTTP_PROXY …). They reach the process's
   * environment but, as in BuildKit, not the cache key (the solver leaves them out of it).
   */
  readonly proxyEnv?: ProxyEnv;
}

/** BuildKit's ProxyEnv: the predefined proxy ARGs passed to RUN without being declared. */
export interface ProxyEnv {
  readonly httpProxy?: string;
  readonly httpsProxy?: string;
  readonly ftpProxy?: string;
  readonly noProxy?: string;
  readonly allProxy?: string;
}

interface MountBase {
  /** Index into the vertex's inputs, or SCRATCH. */
  readonly input: number;
  /** Path inside the source filesystem to mount (BuildKit's `selector`); "" or "/" for the root. */
  readonly selector?: string;
  readonly dest: string;
  /** Output index this mount produces, or SKIP_OUTPUT. */
  readonly output: number;
  readonly readonly: boolean;
}

export interface BindMount extends MountBase {
  readonly type: "bind";
}

export interface CacheMount extends MountBase {
  readonly type: "cache";
  readonly cacheId: string;
  readonly sharing: CacheSharing;
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
}

export interface TmpfsMount extends MountBase {
  readonly type: "tmpfs";
  /** Size limit in bytes; 0 = the runtime's default. */
  readonly size: number;
}

export interface SecretMount extends MountBase {
  readonly type: "secret";
  readonly secretId: string;
  readonly optional: boolean;
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
}

export interface SshMount extends MountBase {
  readonly type: "ssh";
  readonly sshId: string;
  readonly optional: boolean;
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
}

export type Mount = BindMount | CacheMount | TmpfsMount | SecretMount | SshMount;

export interface ExecOp {
  readonly kind: "exec";
  readonly meta: ExecMeta;
  /** The first mount is the root filesystem (dest "/"). */
  readonly mounts: readonly Mount[];
  readonly network: NetworkMode;
  readonly security: SecurityMode;
}

// ---------- FileOp ----------

export interface ChownOpt {
  /** A numeric id, or a name resolved against /etc/passwd|group of the given input (or the action's). */
  readonly user?: { readonly id?: number; readonly name?: string; readonly input?: number };
  readonly group?: { readonly id?: number; readonly name?: string; readonly input?: number };
}

export interface CopyAction {
  readonly type: "copy";
  readonly src: string;
  readonly dest: string;
  readonly owner?: ChownOpt;
  /** File mode to set (COPY --chmod), or undefined to keep. */
  readonly mode?: number;
  /** `--chmod=u+x` style symbolic modes (BuildKit supports these since 1.14). */
  readonly modeSymbolic?: string;
  readonly followSymlink: boolean;
  /** Copy the directory's contents rather than the directory itself. */
  readonly dirCopyContents: boolean;
  readonly attemptUnpackDockerCompatibility: boolean;
  readonly createDestPath: boolean;
  readonly allowWildcard: boolean;
  readonly allowEmptyWildcard: boolean;
  /** Seconds since the epoch for every time written (SOURCE_DATE_EPOCH); undefined keeps source times. */
  readonly timestamp?: number;
  readonly includePatterns?: readonly string[];
  readonly excludePatterns?: readonly string[];
  readonly alwaysReplaceExistingDestPaths?: boolean;
  /** COPY --parents: keep the source's parent directories below this prefix. */
  readonly parents?: boolean;
  /**
   * Paths (absolute in the source) that must exist even though include patterns select the
   * copy (BuildKit's RequiredPaths, set by COPY --parents for sources without wildcards).
   */
  readonly requiredPaths?: readonly string[];
}

export interface MkdirAction {
  readonly type: "mkdir";
  readonly path: string;
  readonly mode: number;
  readonly makeParents: boolean;
  readonly owner?: ChownOpt;
  /** Seconds since the epoch; undefined means now. */
  readonly timestamp?: number;
}

export interface MkfileAction {
  readonly type: "mkfile";
  readonly path: string;
  readonly mode: number;
  readonly data: string; // base64
  readonly owner?: ChownOpt;
  /** Seconds since the epoch; undefined means now. */
  readonly timestamp?: number;
}

export interface RmAction {
  readonly type: "rm";
  readonly path: string;
  readonly allowNotFound: boolean;
  readonly allowWildcard: boolean;
}

export interface SymlinkAction {
  readonly type: "symlink";
  readonly oldpath: string;
  readonly newpath: string;
  readonly owner?: ChownOpt;
  /** Seconds since the epoch; undefined means now. */
  readonly timestamp?: number;
}

export type FileAction = CopyAction | MkdirAction | MkfileAction | RmAction | SymlinkAction;

/**
 * One step of a FileOp. `input` and `secondaryInput` are vertex-input indexes, or SCRATCH; when
 * `inputIsAction` (or `secondaryIsAction`) is set they name an earlier step of the same FileOp
 * instead, as BuildKit's relative inputs do, so that a chain of actions is one vertex.
 */
export interface FileOpStep {
  readonly input: number;
  readonly inputIsAction?: boolean;
  /** For copy: where files come from (vertex input index, or earlier action if secondaryIsAction). */
  readonly secondaryInput?: number;
  readonly secondaryIsAction?: boolean;
  /** Output index this step's result becomes, or SKIP_OUTPUT. */
  readonly output: number;
  readonly action: FileAction;
}

export interface FileOp {
  readonly kind: "file";
  readonly steps: readonly FileOpStep[];
}

// ---------- MergeOp / DiffOp ----------

export interface MergeOp {
  readonly kind: "merge";
  /** Input indexes, lowest layer first. */
  readonly inputs: readonly number[];
}

export interface DiffOp {
  readonly kind: "diff";
  /** Input index of the lower state, or SCRATCH. */
  readonly lower: number;
  readonly upper: number;
}

export type Op = SourceOp | ExecOp | FileOp | MergeOp | DiffOp;

/** A vertex: an op with its inputs and the platform it runs for. Its digest covers all of this. */
export interface Vertex {
  readonly op: Op;
  readonly inputs: readonly OutputRef[];
  readonly platform?: Platform;
  /** Ops that must not be cached (BuildKit's `IgnoreCache`), e.g. --no-cache-filter stages. */
  readonly ignoreCache?: boolean;
}

/** Information about a vertex that does not affect its digest. */
export interface VertexMetadata {
  /** The progress name, e.g. `[stage-1 2/4] RUN make`. */
  readonly description?: string;
  /** Stage/progress group id. */
  readonly progressGroup?: string;
  /** Dockerfile source locations this vertex came from, for error excerpts. */
  readonly locations?: readonly {
    readonly file: string;
    readonly startLine: number;
    readonly endLine: number;
  }[];
}
