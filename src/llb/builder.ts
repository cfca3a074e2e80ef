// A small LLB builder in the shape of BuildKit's client/llb: immutable `State` values that carry
// a filesystem (an op output, or none for scratch) and the metadata later ops use (env, working
// dir, user, platform, network, security). Ops are built lazily: `marshal` walks the graph from a
// state, fills in the default platform, and returns a Definition whose vertex digests come from
// definition.ts, so that the same graph always gives the same bytes.
import { posix } from "node:path";
import type { Digest } from "../oci/digest.js";
import { formatImageRef, parseImageRef } from "../oci/image-ref.js";
import type { Platform } from "../oci/platform.js";
import { type Definition, vertexDigest } from "./definition.js";
import { type GitUrl, parseGitUrl } from "./git-url.js";
import {
  type CacheSharing,
  type ChownOpt,
  type CopyAction,
  type ExecMeta,
  type FileAction as FileActionSpec,
  type FileOpStep,
  type Mount,
  type NetworkMode,
  type Op,
  type OutputRef,
  type ProxyEnv,
  SCRATCH,
  type SecurityMode,
  SKIP_OUTPUT,
  type Vertex,
  type VertexMetadata,
} from "./ops.js";
import {
  GIT_AUTH_HEADER_KEY,
  GIT_AUTH_TOKEN_KEY,
  GitAttr,
  HttpAttr,
  ImageAttr,
  LocalAttr,
} from "./source-attrs.js";

// ---------- environment lists ----------

/**
 * An immutable, ordered environment, as BuildKit's EnvList: setting a key again moves it to the
 * end (the order is that of each key's last assignment), deleting removes it.
 */
export class EnvList {
  private map?: Map<string, string>;

  private constructor(private readonly entries: readonly (readonly [string, string])[]) {}

  static readonly empty = new EnvList([]);

  static from(env: readonly string[]): EnvList {
    let l = EnvList.empty;
    for (const e of env) {
      const i = e.indexOf("=");
      l = i < 0 ? l.set(e, "") : l.set(e.slice(0, i), e.slice(i + 1));
    }
    return l;
  }

  set(key: string, value: string): EnvList {
    const rest = this.has(key) ? this.entries.filter(([k]) => k !== key) : this.entries;
    return new EnvList([...rest, [key, value]]);
  }

  /** Sets the key only when it is not set. */
  setDefault(key: string, value: string): EnvList {
    return this.has(key) ? this : this.set(key, value);
  }

  delete(key: string): EnvList {
    return this.has(key) ? new EnvList(this.entries.filter(([k]) => k !== key)) : this;
  }

  get(key: string): string | undefined {
    if (!this.map) this.map = new Map(this.entries);
    return this.map.get(key);
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  keys(): string[] {
    return this.entries.map(([k]) => k);
  }

  get size(): number {
    return this.entries.length;
  }

  toArray(): string[] {
    return this.entries.map(([k, v]) => `${k}=${v}`);
  }
}

// ---------- constraints and outputs ----------

/** Per-op settings: the platform (digest), the cache opt-out (digest), and progress metadata. */
export interface OpConstraints {
  readonly platform?: Platform;
  readonly ignoreCache?: boolean;
  /** The progress name, e.g. `[stage-0 2/3] RUN make`. */
  readonly description?: string;
  readonly progressGroup?: string;
  readonly locations?: VertexMetadata["locations"];
}

/** One output of an op node; resolved to an OutputRef when marshalled. */
interface NodeOutput {
  readonly node: OpNode;
  readonly index: number;
}

/** What marshalling needs from each kind of op. */
interface OpNode {
  readonly constraints: OpConstraints;
  build(ctx: MarshalContext): Vertex;
}

class InputSet {
  readonly refs: OutputRef[] = [];
  add(ref: OutputRef): number {
    const i = this.refs.findIndex((r) => r.vertex === ref.vertex && r.index === ref.index);
    if (i >= 0) return i;
    this.refs.push(ref);
    return this.refs.length - 1;
  }
}

class MarshalContext {
  readonly vertices = new Map<Digest, Vertex>();
  readonly metadata = new Map<Digest, VertexMetadata>();
  private readonly memo = new Map<OpNode, Digest>();

  constructor(readonly defaultPlatform: Platform | undefined) {}

  /** Follows deferred states to the output they stand for (undefined: scratch). */
  resolve(o: NodeOutput | undefined): NodeOutput | undefined {
    let out = o;
    for (let i = 0; out && out.node instanceof DeferredNode; i++) {
      if (i > 1000) throw new Error("deferred LLB states refer to each other in a loop");
      out = out.node.state().output;
    }
    return out;
  }

  ref(o: NodeOutput): OutputRef {
    const r = this.resolve(o);
    if (!r) throw new Error("a deferred LLB state resolved to scratch where an output is needed");
    return { vertex: this.digest(r.node), index: r.index };
  }

  /** The input index of a state's filesystem, or SCRATCH. */
  input(inputs: InputSet, s: State): number {
    const out = this.resolve(s.output);
    return out ? inputs.add(this.ref(out)) : SCRATCH;
  }

  digest(node: OpNode): Digest {
    const known = this.memo.get(node);
    if (known) return known;
    const vertex = node.build(this);
    const d = vertexDigest(vertex);
    if (!this.vertices.has(d)) this.vertices.set(d, vertex);
    const c = node.constraints;
    if (!this.metadata.has(d) && (c.description || c.progressGroup || c.locations?.length)) {
      const md: { -readonly [K in keyof VertexMetadata]: VertexMetadata[K] } = {};
      if (c.description) md.description = c.description;
      if (c.progressGroup) md.progressGroup = c.progressGroup;
      if (c.locations?.length) md.locations = c.locations;
      this.metadata.set(d, md);
    }
    this.memo.set(node, d);
    return d;
  }

  platformFor(c: OpConstraints, state?: StateMeta): Platform | undefined {
    return c.platform ?? state?.platform ?? this.defaultPlatform;
  }
}

function vertex(op: Op, inputs: InputSet, platform: Platform | undefined, c: OpConstraints): Vertex {
  const v: { -readonly [K in keyof Vertex]: Vertex[K] } = { op, inputs: inputs.refs };
  if (platform) v.platform = platform;
  if (c.ignoreCache) v.ignoreCache = true;
  return v;
}

// ---------- states ----------

interface StateMeta {
  readonly env: EnvList;
  readonly dir?: string;
  readonly user?: string;
  readonly platform?: Platform;
  readonly network?: NetworkMode;
  readonly security?: SecurityMode;
  readonly hostname?: string;
}

const EMPTY_META: StateMeta = { env: EnvList.empty };

/**
 * A filesystem plus the settings that ops built on it use. Immutable: every method returns a
 * new State.
 */
export class State {
  /** @internal */
  constructor(
    /** @internal The op output this state's filesystem is; undefined for scratch. */
    readonly output: NodeOutput | undefined,
    private readonly meta: StateMeta = EMPTY_META,
  ) {}

  get isScratch(): boolean {
    return this.output === undefined;
  }

  private with(patch: Partial<StateMeta>): State {
    return new State(this.output, { ...this.meta, ...patch });
  }

  /** The same settings on another filesystem. */
  withOutputOf(other: State): State {
    return new State(other.output, this.meta);
  }

  addEnv(key: string, value: string): State {
    return this.with({ env: this.meta.env.set(key, value) });
  }

  delEnv(key: string): State {
    return this.with({ env: this.meta.env.delete(key) });
  }

  withEnvList(env: EnvList): State {
    return this.with({ env });
  }

  getEnv(key: string): string | undefined {
    return this.meta.env.get(key);
  }

  envList(): EnvList {
    return this.meta.env;
  }

  /** Sets the working directory; a relative path is taken from the current one. */
  dir(p: string): State {
    const dir = posix.isAbsolute(p) ? posix.normalize(p) : posix.join(this.meta.dir || "/", p);
    return this.with({ dir: dir.length > 1 && dir.endsWith("/") ? dir.slice(0, -1) : dir });
  }

  /** The working directory ("" when none was set). */
  getDir(): string {
    return this.meta.dir ?? "";
  }

  user(u: string): State {
    return this.with({ user: u });
  }

  getUser(): string {
    return this.meta.user ?? "";
  }

  platform(p: Platform): State {
    return this.with({ platform: p });
  }

  getPlatform(): Platform | undefined {
    return this.meta.platform;
  }

  network(n: NetworkMode): State {
    return this.with({ network: n });
  }

  getNetwork(): NetworkMode {
    return this.meta.network ?? "sandbox";
  }

  security(s: SecurityMode): State {
    return this.with({ security: s });
  }

  getSecurity(): SecurityMode {
    return this.meta.security ?? "sandbox";
  }

  hostname(h: string): State {
    return this.with({ hostname: h });
  }

  /** Runs a process with this state as the root filesystem. */
  run(opts: RunOptions): ExecState {
    return ExecState.create(this, opts);
  }

  /** Applies a chain of file actions (one FileOp vertex). */
  file(action: FileAction, c: OpConstraints = {}): State {
    const node = new FileNode(this, action, c);
    return new State({ node, index: 0 }, this.meta);
  }

  /** @internal */
  metaSnapshot(): StateMeta {
    return this.meta;
  }
}

/** The empty filesystem. */
export function scratch(): State {
  return new State(undefined);
}

// ---------- sources ----------

class SourceNode implements OpNode {
  constructor(
    readonly identifier: string,
    readonly attrs: Readonly<Record<string, string>>,
    readonly platformSpecific: boolean,
    readonly constraints: OpConstraints,
  ) {}

  build(ctx: MarshalContext): Vertex {
    const platform = this.platformSpecific ? ctx.platformFor(this.constraints) : undefined;
    return vertex(
      { kind: "source", identifier: this.identifier, attrs: { ...this.attrs } },
      new InputSet(),
      platform,
      this.constraints,
    );
  }
}

function sourceState(node: SourceNode, meta: StateMeta = EMPTY_META): State {
  return new State({ node, index: 0 }, meta);
}

export interface ImageOptions extends OpConstraints {
  /** `default` (omitted from attrs), `pull` or `local`. */
  readonly resolveMode?: "default" | "pull" | "local";
}

/** A registry image (`docker-image://` + the normalised reference). */
export function image(ref: string, opts: ImageOptions = {}): State {
  let id = ref;
  try {
    id = formatImageRef(parseImageRef(ref));
  } catch {
    // kept as written: the source fails with the reference's own error when it runs
  }
  const attrs: Record<string, string> = {};
  if (opts.resolveMode && opts.resolveMode !== "default") attrs[ImageAttr.resolveMode] = opts.resolveMode;
  const meta: StateMeta = opts.platform ? { ...EMPTY_META, platform: opts.platform } : EMPTY_META;
  return sourceState(new SourceNode(`docker-image://${id}`, attrs, true, opts), meta);
}

export interface OciLayoutOptions extends OpConstraints {
  readonly sessionId?: string;
}

/** An image in an OCI layout directory: `oci-layout://PATH[:TAG|@DIGEST]`. */
export function ociLayout(path: string, ref: string | undefined, opts: OciLayoutOptions = {}): State {
  let id = `oci-layout://${path}`;
  if (ref)
    id +=
      ref.startsWith("@") || ref.startsWith(":") ? ref : ref.startsWith("sha256:") ? `@${ref}` : `:${ref}`;
  const attrs: Record<string, string> = {};
  if (opts.sessionId) attrs["oci.session"] = opts.sessionId;
  const meta: StateMeta = opts.platform ? { ...EMPTY_META, platform: opts.platform } : EMPTY_META;
  return sourceState(new SourceNode(id, attrs, true, opts), meta);
}

export interface LocalOptions extends OpConstraints {
  /** Only paths matching these patterns are transferred. */
  readonly include?: readonly string[];
  /** Paths matching these (.dockerignore) patterns are not transferred. */
  readonly exclude?: readonly string[];
  /** The paths the build reads: the transfer follows these (and their symlinks) only. */
  readonly followPaths?: readonly string[];
  /** Lets the engine reuse an earlier sync of another context with the same hint. */
  readonly sharedKeyHint?: string;
  readonly sessionId?: string;
}

/** A directory the client sends (the build context, or a named local context). */
export function local(name: string, opts: LocalOptions = {}): State {
  const attrs: Record<string, string> = {};
  if (opts.sessionId) attrs[LocalAttr.sessionId] = opts.sessionId;
  if (opts.include?.length) attrs[LocalAttr.includePatterns] = JSON.stringify(opts.include);
  if (opts.followPaths?.length) attrs[LocalAttr.followPaths] = JSON.stringify(opts.followPaths);
  if (opts.exclude?.length) attrs[LocalAttr.excludePatterns] = JSON.stringify(opts.exclude);
  if (opts.sharedKeyHint) attrs[LocalAttr.sharedKeyHint] = opts.sharedKeyHint;
  return sourceState(new SourceNode(`local://${name}`, attrs, false, opts));
}

export interface GitOptions extends OpConstraints {
  /** The branch, tag or commit (instead of the `ref` argument). */
  readonly ref?: string;
  readonly keepGitDir?: boolean;
  readonly checksum?: string;
  readonly subdir?: string;
  readonly skipSubmodules?: boolean;
  readonly fetchByCommit?: boolean;
  readonly mtime?: string;
  readonly authHeaderSecret?: string;
  readonly authTokenSecret?: string;
  readonly knownSshHosts?: string;
  readonly mountSshSock?: string;
}

/**
 * A git checkout: `git://HOST/PATH[#REF[:SUBDIR]]` as BuildKit builds the identifier (the same
 * for https and ssh remotes of one repository), with the full remote in `git.fullurl`.
 */
export function git(url: string, ref = "", opts: GitOptions = {}): State {
  let remote: GitUrl | undefined;
  let full = url;
  try {
    remote = parseGitUrl(url);
  } catch (e) {
    if ((e as { code?: string }).code === "unknown-protocol") {
      full = `https://${url}`;
      try {
        remote = parseGitUrl(full);
      } catch {
        remote = undefined;
      }
    }
  }
  if (remote) full = remote.remote;
  const colon = ref.indexOf(":");
  let gitRef = colon < 0 ? ref : ref.slice(0, colon);
  if (opts.ref) gitRef = opts.ref;
  let subdir = colon < 0 ? "" : posix.join("/", ref.slice(colon + 1)).replace(/^\//, "");
  if (opts.subdir) subdir = opts.subdir;
  if (!gitRef && remote?.ref) gitRef = remote.ref;
  if (!subdir && remote?.subdir) subdir = remote.subdir;
  let id: string;
  if (!remote) id = url;
  else {
    id = remote.host + posix.join("/", remote.path);
    if (gitRef || subdir) {
      id += `#${gitRef}`;
      if (subdir) id += `:${subdir}`;
    }
  }
  const attrs: Record<string, string> = {};
  if (opts.keepGitDir) attrs[GitAttr.keepGitDir] = "true";
  if (full) attrs[GitAttr.fullUrl] = full;
  attrs[GitAttr.authTokenSecret] = opts.authTokenSecret ?? GIT_AUTH_TOKEN_KEY;
  attrs[GitAttr.authHeaderSecret] = opts.authHeaderSecret ?? GIT_AUTH_HEADER_KEY;
  if (remote?.scheme === "ssh") {
    if (opts.knownSshHosts) attrs[GitAttr.knownSshHosts] = opts.knownSshHosts;
    attrs[GitAttr.mountSshSock] = opts.mountSshSock || "default";
  }
  if (opts.checksum) attrs[GitAttr.checksum] = opts.checksum;
  if (opts.skipSubmodules) attrs[GitAttr.skipSubmodules] = "true";
  if (opts.mtime) attrs[GitAttr.mtime] = opts.mtime;
  if (opts.fetchByCommit) attrs[GitAttr.fetchByCommit] = "true";
  return sourceState(new SourceNode(`git://${id}`, attrs, false, opts));
}

export interface HttpOptions extends OpConstraints {
  /** `sha256:…`: the download must have this digest. */
  readonly checksum?: string;
  /** The file name in the result (default: from the URL). */
  readonly filename?: string;
  readonly perm?: number;
  readonly uid?: number;
  readonly gid?: number;
}

/** A file downloaded over HTTP(S). */
export function http(url: string, opts: HttpOptions = {}): State {
  const attrs: Record<string, string> = {};
  if (opts.checksum) attrs[HttpAttr.checksum] = opts.checksum;
  if (opts.filename) attrs[HttpAttr.filename] = opts.filename;
  if (opts.perm) attrs[HttpAttr.perm] = `0${opts.perm.toString(8)}`;
  if (opts.uid) attrs[HttpAttr.uid] = String(opts.uid);
  if (opts.gid) attrs[HttpAttr.gid] = String(opts.gid);
  return sourceState(new SourceNode(url, attrs, false, opts));
}

// ---------- exec ----------

export interface RunMount {
  readonly dest: string;
  /** The filesystem mounted; scratch (or omitted) for an empty one. */
  readonly source?: State;
  /** A sub-path of the source to mount. */
  readonly selector?: string;
  readonly readonly?: boolean;
  /** A writable mount whose changes are thrown away (BuildKit's ForceNoOutput). */
  readonly noOutput?: boolean;
  readonly cache?: { readonly id: string; readonly sharing?: CacheSharing };
  readonly tmpfs?: { readonly size?: number };
}

export interface RunSecret {
  readonly id: string;
  /** Where the secret file appears; undefined with `env` = only as an env var. */
  readonly target?: string;
  /** Expose the secret as this environment variable. */
  readonly env?: string;
  readonly optional?: boolean;
  readonly uid?: number;
  readonly gid?: number;
  /** Default 0o400. */
  readonly mode?: number;
}

export interface RunSsh {
  /** Default `default`. */
  readonly id?: string;
  /** Default `/run/buildkit/ssh_agent.N`. */
  readonly target?: string;
  readonly optional?: boolean;
  readonly uid?: number;
  readonly gid?: number;
  /** Default 0o600. */
  readonly mode?: number;
}

export interface RunOptions extends OpConstraints {
  readonly args: readonly string[];
  /** Extra env (KEY=VALUE) on top of the state's. */
  readonly env?: readonly string[];
  readonly cwd?: string;
  readonly user?: string;
  readonly hostname?: string;
  readonly mounts?: readonly RunMount[];
  readonly secrets?: readonly RunSecret[];
  readonly ssh?: readonly RunSsh[];
  readonly network?: NetworkMode;
  readonly security?: SecurityMode;
  readonly proxyEnv?: ProxyEnv;
  readonly extraHosts?: readonly { readonly host: string; readonly ip: string }[];
  readonly ulimits?: readonly { readonly name: string; readonly soft: number; readonly hard: number }[];
  readonly cgroupParent?: string;
  readonly validExitCodes?: readonly number[];
  /** The root filesystem is read-only (and the op then has no root output). */
  readonly readonlyRootfs?: boolean;
}

interface PlannedMount {
  readonly spec: RunMount;
  readonly output: number;
}

class ExecNode implements OpNode {
  readonly mounts: PlannedMount[];
  readonly constraints: OpConstraints;

  constructor(
    readonly base: State,
    readonly opts: RunOptions,
  ) {
    this.constraints = opts;
    const all: RunMount[] = [
      { dest: "/", source: base, readonly: !!opts.readonlyRootfs },
      ...(opts.mounts ?? []),
    ];
    const seen = new Set<string>();
    for (const m of all) {
      if (seen.has(m.dest)) throw new Error(`duplicate mount target ${m.dest}`);
      seen.add(m.dest);
    }
    // BuildKit sorts mounts by target; "/" sorts first.
    const sorted = all
      .map((m, i) => ({ m, i }))
      .sort((a, b) => (a.m.dest < b.m.dest ? -1 : a.m.dest > b.m.dest ? 1 : a.i - b.i))
      .map(({ m }) => m);
    let out = 0;
    this.mounts = sorted.map((spec) => {
      const hasOutput = !spec.noOutput && !spec.readonly && !spec.cache && !spec.tmpfs;
      return { spec, output: hasOutput ? out++ : SKIP_OUTPUT };
    });
  }

  build(ctx: MarshalContext): Vertex {
    const o = this.opts;
    const meta = this.base.metaSnapshot();
    const inputs = new InputSet();
    const mounts: Mount[] = [];
    for (const { spec, output } of this.mounts) {
      const src = spec.tmpfs ? undefined : spec.source;
      const input = src ? ctx.input(inputs, src) : SCRATCH;
      const base = {
        input,
        dest: spec.dest,
        output,
        readonly: !!spec.readonly,
        ...(spec.selector ? { selector: spec.selector } : {}),
      };
      if (spec.cache) {
        mounts.push({
          ...base,
          type: "cache",
          cacheId: spec.cache.id,
          sharing: spec.cache.sharing ?? "shared",
        });
      } else if (spec.tmpfs) {
        mounts.push({ ...base, input: SCRATCH, type: "tmpfs", size: spec.tmpfs.size ?? 0 });
      } else {
        mounts.push({ ...base, type: "bind" });
      }
    }
    let env = meta.env;
    for (const e of o.env ?? []) {
      const i = e.indexOf("=");
      env = i < 0 ? env.set(e, "") : env.set(e.slice(0, i), e.slice(i + 1));
    }
    const sshTargets: string[] = [];
    (o.ssh ?? []).forEach((s, i) => {
      sshTargets.push(s.target || `/run/buildkit/ssh_agent.${i}`);
    });
    if (sshTargets.length && !env.has("SSH_AUTH_SOCK")) env = env.set("SSH_AUTH_SOCK", sshTargets[0]!);
    const platform = ctx.platformFor(this.constraints, meta);
    if ((platform?.os ?? "linux") !== "windows") env = env.setDefault("PATH", defaultPathEnv());
    const secretEnv: { id: string; name: string; optional: boolean }[] = [];
    for (const s of o.secrets ?? []) {
      if (s.env !== undefined) secretEnv.push({ id: s.id, name: s.env, optional: !!s.optional });
      if (s.target !== undefined) {
        mounts.push({
          type: "secret",
          input: SCRATCH,
          dest: s.target,
          output: SKIP_OUTPUT,
          readonly: true,
          secretId: s.id,
          optional: !!s.optional,
          uid: s.uid ?? 0,
          gid: s.gid ?? 0,
          mode: s.mode ?? 0o400,
        });
      }
    }
    (o.ssh ?? []).forEach((s, i) => {
      mounts.push({
        type: "ssh",
        input: SCRATCH,
        dest: sshTargets[i]!,
        output: SKIP_OUTPUT,
        readonly: true,
        sshId: s.id || "default",
        optional: !!s.optional,
        uid: s.uid ?? 0,
        gid: s.gid ?? 0,
        mode: s.mode ?? 0o600,
      });
    });
    const execMeta: { -readonly [K in keyof ExecMeta]: ExecMeta[K] } = {
      args: [...o.args],
      env: env.toArray(),
      cwd: o.cwd ?? (meta.dir || "/"),
      user: o.user ?? meta.user ?? "",
    };
    const hostname = o.hostname ?? meta.hostname;
    if (hostname) execMeta.hostname = hostname;
    if (o.extraHosts?.length) execMeta.extraHosts = o.extraHosts.map((h) => ({ host: h.host, ip: h.ip }));
    if (o.ulimits?.length)
      execMeta.ulimits = o.ulimits.map((u) => ({ name: u.name, soft: u.soft, hard: u.hard }));
    if (o.cgroupParent) execMeta.cgroupParent = o.cgroupParent;
    if (secretEnv.length) execMeta.secretEnv = secretEnv;
    if (o.validExitCodes?.length) execMeta.validExitCodes = [...o.validExitCodes];
    if (o.proxyEnv) {
      const p = Object.fromEntries(Object.entries(o.proxyEnv).filter(([, v]) => v !== undefined && v !== ""));
      if (Object.keys(p).length) execMeta.proxyEnv = p;
    }
    return vertex(
      {
        kind: "exec",
        meta: execMeta,
        mounts,
        network: o.network ?? meta.network ?? "sandbox",
        security: o.security ?? meta.security ?? "sandbox",
      },
      inputs,
      platform,
      this.constraints,
    );
  }
}

/** The result of `State.run`: the root filesystem after the run, and the other mounts' results. */
export class ExecState extends State {
  private constructor(
    output: NodeOutput | undefined,
    meta: StateMeta,
    private readonly exec: ExecNode,
  ) {
    super(output, meta);
  }

  /** @internal */
  static create(base: State, opts: RunOptions): ExecState {
    const node = new ExecNode(base, opts);
    const root = node.mounts.find((m) => m.spec.dest === "/")!;
    const output = root.output === SKIP_OUTPUT ? base.output : { node, index: root.output };
    return new ExecState(output, base.metaSnapshot(), node);
  }

  /** The root filesystem after the run. */
  root(): State {
    return new State(this.output, this.metaSnapshot());
  }

  /** The filesystem of the mount at `dest` after the run (its input when it has no output). */
  getMount(dest: string): State {
    const m = this.exec.mounts.find((x) => x.spec.dest === dest);
    if (!m) throw new Error(`no mount at ${dest}`);
    if (m.output === SKIP_OUTPUT) return m.spec.source ?? scratch();
    return new State({ node: this.exec, index: m.output });
  }
}

/** BuildKit's system.DefaultPathEnv for Unix. */
export function defaultPathEnv(): string {
  return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

// ---------- file actions ----------

export interface ChownSpec {
  readonly user?: { readonly id?: number; readonly name?: string };
  readonly group?: { readonly id?: number; readonly name?: string };
  /** The filesystem whose /etc/passwd and /etc/group resolve names (default: the action's). */
  readonly lookup?: State;
}

/** BuildKit's WithUser: `user[:group]`, each numeric (or `root`) as an id, else a name. */
export function parseChown(spec: string, lookup?: State): ChownSpec {
  const colon = spec.indexOf(":");
  const parts = colon < 0 ? [spec] : [spec.slice(0, colon), spec.slice(colon + 1)];
  const one = (v: string) => {
    if (v === "root") return { id: 0 };
    if (/^[+-]?[0-9]+$/.test(v)) {
      const n = Number.parseInt(v, 10);
      if (n >= -2147483648 && n <= 2147483647) return { id: n };
    }
    return { name: v };
  };
  return { user: one(parts[0]!), group: parts.length > 1 ? one(parts[1]!) : undefined, lookup };
}

export interface CopyOptions {
  readonly owner?: ChownSpec;
  readonly mode?: number;
  readonly modeSymbolic?: string;
  readonly followSymlink?: boolean;
  readonly dirCopyContents?: boolean;
  readonly attemptUnpack?: boolean;
  readonly createDestPath?: boolean;
  readonly allowWildcard?: boolean;
  readonly allowEmptyWildcard?: boolean;
  readonly includePatterns?: readonly string[];
  readonly excludePatterns?: readonly string[];
  readonly requiredPaths?: readonly string[];
  readonly alwaysReplaceExistingDestPaths?: boolean;
  /** Seconds since the epoch (SOURCE_DATE_EPOCH). */
  readonly timestamp?: number;
}

export interface MkdirOptions {
  readonly makeParents?: boolean;
  readonly owner?: ChownSpec;
  readonly timestamp?: number;
}

export interface MkfileOptions {
  readonly owner?: ChownSpec;
  readonly timestamp?: number;
}

export interface RmOptions {
  readonly allowNotFound?: boolean;
  readonly allowWildcard?: boolean;
}

type ActionSpec =
  | {
      readonly type: "copy";
      readonly from: State;
      readonly src: string;
      readonly dest: string;
      readonly o: CopyOptions;
    }
  | { readonly type: "mkdir"; readonly path: string; readonly mode: number; readonly o: MkdirOptions }
  | {
      readonly type: "mkfile";
      readonly path: string;
      readonly mode: number;
      readonly data: string | Uint8Array;
      readonly o: MkfileOptions;
    }
  | { readonly type: "rm"; readonly path: string; readonly o: RmOptions }
  | {
      readonly type: "symlink";
      readonly oldpath: string;
      readonly newpath: string;
      readonly o: MkfileOptions;
    };

/** A chain of file actions; each may be followed by more with the methods below. */
export class FileAction {
  private constructor(
    readonly prev: FileAction | undefined,
    /** @internal */ readonly spec: ActionSpec,
  ) {}

  /** @internal */
  static start(spec: ActionSpec): FileAction {
    return new FileAction(undefined, spec);
  }

  copy(from: State, src: string, dest: string, o: CopyOptions = {}): FileAction {
    return new FileAction(this, { type: "copy", from, src, dest, o });
  }

  mkdir(path: string, mode: number, o: MkdirOptions = {}): FileAction {
    return new FileAction(this, { type: "mkdir", path, mode, o });
  }

  mkfile(path: string, mode: number, data: string | Uint8Array, o: MkfileOptions = {}): FileAction {
    return new FileAction(this, { type: "mkfile", path, mode, data, o });
  }

  rm(path: string, o: RmOptions = {}): FileAction {
    return new FileAction(this, { type: "rm", path, o });
  }

  symlink(oldpath: string, newpath: string, o: MkfileOptions = {}): FileAction {
    return new FileAction(this, { type: "symlink", oldpath, newpath, o });
  }

  /** The chain, first action first. */
  actions(): ActionSpec[] {
    const out: ActionSpec[] = [];
    for (let a: FileAction | undefined = this; a; a = a.prev) out.push(a.spec);
    return out.reverse();
  }
}

export function copy(from: State, src: string, dest: string, o: CopyOptions = {}): FileAction {
  return FileAction.start({ type: "copy", from, src, dest, o });
}

export function mkdir(path: string, mode: number, o: MkdirOptions = {}): FileAction {
  return FileAction.start({ type: "mkdir", path, mode, o });
}

export function mkfile(
  path: string,
  mode: number,
  data: string | Uint8Array,
  o: MkfileOptions = {},
): FileAction {
  return FileAction.start({ type: "mkfile", path, mode, data, o });
}

export function rm(path: string, o: RmOptions = {}): FileAction {
  return FileAction.start({ type: "rm", path, o });
}

export function symlink(oldpath: string, newpath: string, o: MkfileOptions = {}): FileAction {
  return FileAction.start({ type: "symlink", oldpath, newpath, o });
}

/** BuildKit's normalizePath: relative to `parent`, trailing `/` and `/.` kept when asked. */
export function normalizeActionPath(parent: string, p: string, keepSlash: boolean): string {
  const orig = p;
  let out = posix.normalize(p === "" ? "." : p);
  if (out.length > 1 && out.endsWith("/")) out = out.slice(0, -1);
  if (!posix.isAbsolute(out)) out = posix.join("/", parent, out);
  if (out.length > 1 && out.endsWith("/")) out = out.slice(0, -1);
  if (keepSlash) {
    if (orig.endsWith("/") && !out.endsWith("/")) out += "/";
    else if (orig.endsWith("/.")) {
      if (out !== "/") out += "/";
      out += ".";
    }
  }
  return out;
}

class FileNode implements OpNode {
  constructor(
    readonly base: State,
    readonly action: FileAction,
    readonly constraints: OpConstraints,
  ) {}

  build(ctx: MarshalContext): Vertex {
    const inputs = new InputSet();
    const baseIdx = ctx.input(inputs, this.base);
    const parent = this.base.getDir();
    const chown = (c: ChownSpec | undefined): ChownOpt | undefined => {
      if (!c || (!c.user && !c.group)) return undefined;
      const lookup = c.lookup ? ctx.input(inputs, c.lookup) : undefined;
      const one = (u: { id?: number; name?: string } | undefined) =>
        u === undefined
          ? undefined
          : u.name !== undefined
            ? lookup !== undefined
              ? { name: u.name, input: lookup }
              : { name: u.name }
            : { id: u.id ?? 0 };
      const out: { user?: ChownOpt["user"]; group?: ChownOpt["group"] } = {};
      const user = one(c.user);
      const group = one(c.group);
      if (user) out.user = user;
      if (group) out.group = group;
      return out;
    };
    const specs = this.action.actions();
    const steps: FileOpStep[] = specs.map((spec, i) => {
      const step: { -readonly [K in keyof FileOpStep]: FileOpStep[K] } = {
        input: i === 0 ? baseIdx : i - 1,
        output: i === specs.length - 1 ? 0 : SKIP_OUTPUT,
        action: undefined as unknown as FileActionSpec,
      };
      if (i > 0) step.inputIsAction = true;
      switch (spec.type) {
        case "copy": {
          const o = spec.o;
          step.secondaryInput = ctx.input(inputs, spec.from);
          let src = posix.normalize(spec.src === "" ? "." : spec.src);
          if (src.length > 1 && src.endsWith("/")) src = src.slice(0, -1);
          if (!posix.isAbsolute(src)) src = posix.join(spec.from.getDir() || "/", src);
          const a: { -readonly [K in keyof CopyAction]: CopyAction[K] } = {
            type: "copy",
            src,
            dest: normalizeActionPath(parent, spec.dest, true),
            followSymlink: !!o.followSymlink,
            dirCopyContents: !!o.dirCopyContents,
            attemptUnpackDockerCompatibility: !!o.attemptUnpack,
            createDestPath: !!o.createDestPath,
            allowWildcard: !!o.allowWildcard,
            allowEmptyWildcard: !!o.allowEmptyWildcard,
          };
          const owner = chown(o.owner);
          if (owner) a.owner = owner;
          if (o.modeSymbolic) a.modeSymbolic = o.modeSymbolic;
          else if (o.mode !== undefined) a.mode = o.mode;
          if (o.timestamp !== undefined) a.timestamp = o.timestamp;
          if (o.includePatterns?.length) a.includePatterns = [...o.includePatterns];
          if (o.excludePatterns?.length) a.excludePatterns = [...o.excludePatterns];
          if (o.requiredPaths?.length) a.requiredPaths = [...o.requiredPaths];
          if (o.alwaysReplaceExistingDestPaths) a.alwaysReplaceExistingDestPaths = true;
          step.action = a;
          break;
        }
        case "mkdir": {
          step.action = {
            type: "mkdir",
            path: normalizeActionPath(parent, spec.path, false),
            mode: spec.mode & 0o777,
            makeParents: !!spec.o.makeParents,
            ...optional("owner", chown(spec.o.owner)),
            ...optional("timestamp", spec.o.timestamp),
          };
          break;
        }
        case "mkfile": {
          const data =
            typeof spec.data === "string" ? Buffer.from(spec.data, "utf8") : Buffer.from(spec.data);
          step.action = {
            type: "mkfile",
            path: normalizeActionPath(parent, spec.path, false),
            mode: spec.mode & 0o7777,
            data: data.toString("base64"),
            ...optional("owner", chown(spec.o.owner)),
            ...optional("timestamp", spec.o.timestamp),
          };
          break;
        }
        case "rm":
          step.action = {
            type: "rm",
            path: normalizeActionPath(parent, spec.path, false),
            allowNotFound: !!spec.o.allowNotFound,
            allowWildcard: !!spec.o.allowWildcard,
          };
          break;
        case "symlink":
          step.action = {
            type: "symlink",
            oldpath: spec.oldpath,
            newpath: normalizeActionPath(parent, spec.newpath, false),
            ...optional("owner", chown(spec.o.owner)),
            ...optional("timestamp", spec.o.timestamp),
          };
          break;
      }
      return step;
    });
    // A FileOp is not platform specific (BuildKit drops its platform).
    return vertex({ kind: "file", steps }, inputs, undefined, this.constraints);
  }
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

// ---------- merge and diff ----------

class MergeNode implements OpNode {
  constructor(
    readonly states: readonly State[],
    readonly constraints: OpConstraints,
  ) {}

  build(ctx: MarshalContext): Vertex {
    const inputs = new InputSet();
    const idx = this.states.map((s) => ctx.input(inputs, s));
    return vertex(
      { kind: "merge", inputs: idx },
      inputs,
      ctx.platformFor(this.constraints),
      this.constraints,
    );
  }
}

/**
 * Layers states, lowest first; later inputs win. Scratch inputs are dropped; one remaining input
 * is returned as it is (as BuildKit's llb.Merge does).
 */
export function merge(states: readonly State[], c: OpConstraints = {}): State {
  const real = states.filter((s) => !s.isScratch);
  if (real.length === 0) return scratch();
  if (real.length === 1) return real[0]!;
  return new State({ node: new MergeNode(real, c), index: 0 }, real[0]!.metaSnapshot());
}

class DiffNode implements OpNode {
  constructor(
    readonly lower: State,
    readonly upper: State,
    readonly constraints: OpConstraints,
  ) {}

  build(ctx: MarshalContext): Vertex {
    const inputs = new InputSet();
    const lower = ctx.input(inputs, this.lower);
    const upper = ctx.input(inputs, this.upper);
    return vertex(
      { kind: "diff", lower, upper },
      inputs,
      ctx.platformFor(this.constraints),
      this.constraints,
    );
  }
}

/** The changes that turn `lower` into `upper`. */
export function diff(lower: State, upper: State, c: OpConstraints = {}): State {
  if (upper.isScratch) return scratch();
  return new State({ node: new DiffNode(lower, upper, c), index: 0 }, upper.metaSnapshot());
}

// ---------- deferred states ----------

class DeferredNode implements OpNode {
  readonly constraints: OpConstraints = {};
  private resolved?: State;

  constructor(private readonly fn: () => State) {}

  state(): State {
    if (!this.resolved) this.resolved = this.fn();
    return this.resolved;
  }

  build(): Vertex {
    throw new Error("a deferred LLB state is not an op");
  }
}

/**
 * A state whose filesystem is decided when the graph is marshalled (BuildKit's mutable output):
 * e.g. the build context, whose transfer filter is known only once every instruction has been
 * converted. `fn` runs once. Settings (env, dir…) are the deferred state's own, not fn's.
 */
export function deferred(fn: () => State): State {
  return new State({ node: new DeferredNode(fn), index: 0 });
}

// ---------- marshalling ----------

export interface MarshalOptions {
  /** The platform of ops that have none of their own (image sources, execs, merges). */
  readonly platform?: Platform;
}

/** The definition of everything `state` needs, with deterministic digests. */
export function marshal(state: State, opts: MarshalOptions = {}): Definition {
  const ctx = new MarshalContext(opts.platform);
  const out = ctx.resolve(state.output);
  const root = out ? ctx.ref(out) : undefined;
  return { vertices: ctx.vertices, metadata: ctx.metadata, root };
}
