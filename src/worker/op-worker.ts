// Executes LLB vertices on this host: sources become snapshots, ExecOps run in containers over
// snapshots, FileOps change snapshots in the engine itself, MergeOps stack snapshot chains.
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import type { LayerRecordStore } from "../exporter/layer-blobs.js";
import { snapshotChain } from "../exporter/layer-blobs.js";
import type {
  CopyAction,
  ExecOp,
  FileAction,
  FileOp,
  MergeOp,
  Mount,
  SecretMount,
  SourceOp,
  SshMount,
  Vertex,
} from "../llb/ops.js";
import { SCRATCH } from "../llb/ops.js";
import type { Digest } from "../oci/digest.js";
import { hostPlatform, type Platform } from "../oci/platform.js";
import type { BuildSession } from "../session/types.js";
import type { ActiveSnapshot, MountSpec, SnapshotId, Snapshotter } from "../snapshot/types.js";
import type { OpWorker, OutputResult, VertexContext } from "../solver/types.js";
import { openGitSessionAgent } from "../source/git-session-agent.js";
import { checkoutGitToDir, resolveGitKey } from "../source/git-source.js";
import { fetchHttpToDir, resolveHttpKey } from "../source/http-source.js";
import type { HttpSourceCache } from "../source/http-source-cache.js";
import type { ImageProvider } from "../source/image-provider.js";
import type { ImageUnpacker } from "../source/image-unpack.js";
import type { CacheMountStore } from "./cache-mounts.js";
import { openExecSecrets } from "./exec-secrets.js";
import { DeferredLinks } from "./fileop/deferred-links.js";
import type { ContainerMount, Executor } from "./types.js";

/** A build's local contexts (the build context, named local contexts), synced into the engine. */
export interface LocalSources {
  /** The engine-side directory holding the named context, synced for this build. */
  sync(name: string, attrs: Readonly<Record<string, string>>, signal: AbortSignal): Promise<string>;
  /** A digest of everything the context includes. */
  checksum(dir: string): Promise<Digest>;
  /** A digest of just what a copy action selects from the context. */
  selectionChecksum(dir: string, action: CopyAction): Promise<Digest>;
}

export type FileActionRunner = (
  action: FileAction,
  roots: { destRoot: string; srcRoot?: string; deferredLinks?: DeferredLinks },
) => Promise<void>;

export interface HostOpWorkerDeps {
  readonly snapshotter: Snapshotter;
  readonly executor: Executor;
  readonly unpacker: ImageUnpacker;
  readonly layerRecords: LayerRecordStore;
  /** The provider and reference for a `docker-image://` or `oci-layout://` identifier. */
  readonly imageProvider: (identifier: string) => { provider: ImageProvider; ref: string };
  readonly locals: LocalSources;
  readonly runFileAction: FileActionRunner;
  readonly cacheMounts: CacheMountStore;
  readonly scratchDir: string;
  /** Caches of network sources: http bodies by URL, git mirrors by remote. */
  readonly remote: { readonly http: HttpSourceCache; readonly gitCacheDir: string };
  /** The build's session: secrets and SSH agents come from it. */
  readonly session?: BuildSession;
  /** Defaults applied to every RUN step of this build (--add-host, --shm-size, --ulimit, --cgroup-parent). */
  readonly execDefaults?: { shmSize?: number; cgroupParent?: string };
}

/** A RUN step that exited non-zero: BuildKit's wording, which users and scripts grep for. */
export class ExecFailedError extends Error {
  override name = "ExecFailedError";
  constructor(
    readonly args: readonly string[],
    readonly exitCode: number,
  ) {
    super(`process "${args.join(" ")}" did not complete successfully: exit code: ${exitCode}`);
  }
}

function isHttp(op: SourceOp): boolean {
  return op.identifier.startsWith("https://") || op.identifier.startsWith("http://");
}

function isGit(op: SourceOp): boolean {
  return op.identifier.startsWith("git://");
}

function isLocal(op: SourceOp): boolean {
  return op.identifier.startsWith("local://");
}

export class HostOpWorker implements OpWorker {
  private readonly localDirs = new Map<string, Promise<string>>();

  constructor(private readonly deps: HostOpWorkerDeps) {}

  private localDir(op: SourceOp, signal: AbortSignal): Promise<string> {
    const name = op.identifier.slice("local://".length);
    let p = this.localDirs.get(op.identifier + JSON.stringify(op.attrs));
    if (!p) {
      p = this.deps.locals.sync(name, op.attrs, signal);
      this.localDirs.set(op.identifier + JSON.stringify(op.attrs), p);
    }
    return p;
  }

  async contentKey(vertex: Vertex, ctx: VertexContext): Promise<string | undefined> {
    const op = vertex.op;
    if (op.kind !== "source") return undefined;
    if (isLocal(op)) return this.deps.locals.checksum(await this.localDir(op, ctx.signal));
    const getSecret = (id: string) => this.deps.session?.getSecret(id) ?? Promise.resolve(undefined);
    if (isHttp(op))
      return resolveHttpKey(op.identifier, op.attrs, this.deps.remote.http, getSecret, ctx.signal);
    if (isGit(op))
      return this.withGitAgent(op, (sshAuthSock) =>
        resolveGitKey(op.identifier, op.attrs, { getSecret, sshAuthSock, signal: ctx.signal }),
      );
    return undefined;
  }

  async selectionKey(
    vertex: Vertex,
    index: number,
    input: Vertex,
    ctx: VertexContext,
  ): Promise<string | undefined> {
    if (vertex.op.kind !== "file" || input.op.kind !== "source" || !isLocal(input.op)) return undefined;
    // Only when every use of this input is as a copy source can the key cover just the selection.
    const uses = vertex.op.steps.filter(
      (s) => (!s.inputIsAction && s.input === index) || (!s.secondaryIsAction && s.secondaryInput === index),
    );
    if (uses.some((s) => s.input === index && !s.inputIsAction) || uses.some((s) => s.action.type !== "copy"))
      return undefined;
    const dir = await this.localDir(input.op, ctx.signal);
    const sums = await Promise.all(
      uses.map((s) => this.deps.locals.selectionChecksum(dir, s.action as CopyAction)),
    );
    return sums.join(",");
  }

  cacheable(vertex: Vertex): boolean {
    return !(vertex.op.kind === "source" && isLocal(vertex.op));
  }

  async resultExists(result: readonly OutputResult[]): Promise<boolean> {
    for (const r of result) {
      if (r.kind === "directory") return false;
      if (r.kind === "snapshot" && (await this.deps.snapshotter.stat(r.id))?.kind !== "committed")
        return false;
    }
    return true;
  }

  async execute(
    vertex: Vertex,
    inputs: readonly OutputResult[],
    ctx: VertexContext,
  ): Promise<OutputResult[]> {
    const op = vertex.op;
    switch (op.kind) {
      case "source":
        return [await this.source(op, vertex.platform ?? hostPlatform(), ctx)];
      case "exec":
        return this.exec(op, inputs, vertex.platform ?? hostPlatform(), ctx);
      case "file":
        return this.file(op, inputs, ctx);
      case "merge":
        return [await this.merge(op, inputs)];
      case "diff":
        throw new Error("DiffOp is not supported by this worker yet");
    }
  }

  private async source(op: SourceOp, platform: Platform, ctx: VertexContext): Promise<OutputResult> {
    if (isLocal(op)) return { kind: "directory", path: await this.localDir(op, ctx.signal) };
    if (op.identifier.startsWith("docker-image://") || op.identifier.startsWith("oci-layout://")) {
      const { provider, ref } = this.deps.imageProvider(op.identifier);
      const image = await provider.resolve(ref, platform);
      const started = Date.now();
      const snapshot = await this.deps.unpacker.unpack(provider, image, (desc, done) =>
        ctx.emit({
          type: "status",
          vertex: ctx.digest,
          id: desc.digest,
          name: `extracting ${desc.digest}`,
          current: done ? desc.size : 0,
          total: desc.size,
          started,
          completed: done ? Date.now() : undefined,
          timestamp: Date.now(),
        }),
      );
      return snapshot ? { kind: "snapshot", id: snapshot } : { kind: "scratch" };
    }
    if (isHttp(op) || isGit(op)) {
      const getSecret = (id: string) => this.deps.session?.getSecret(id) ?? Promise.resolve(undefined);
      const active = await this.deps.snapshotter.prepare(undefined);
      try {
        await this.deps.snapshotter.withMounted(active.id, async (dir) => {
          if (isHttp(op))
            await fetchHttpToDir(op.identifier, op.attrs, dir, this.deps.remote.http, getSecret, ctx.signal);
          else
            await this.withGitAgent(op, (sshAuthSock) =>
              checkoutGitToDir(op.identifier, op.attrs, dir, {
                cacheDir: this.deps.remote.gitCacheDir,
                getSecret,
                sshAuthSock,
                signal: ctx.signal,
              }),
            );
        });
        await this.deps.snapshotter.commit(active.id);
      } catch (err) {
        await this.deps.snapshotter.remove(active.id).catch(() => {});
        throw err;
      }
      return { kind: "snapshot", id: active.id };
    }
    throw new Error(`unsupported source ${op.identifier}`);
  }

  /** Runs a git command for `op` with the client's SSH agent when the remote is reached over ssh. */
  private async withGitAgent<T>(op: SourceOp, fn: (sshAuthSock?: string) => Promise<T>): Promise<T> {
    const agent = await openGitSessionAgent(op.identifier, op.attrs, this.deps.session, this.deps.scratchDir);
    try {
      return await fn(agent.sshAuthSock);
    } finally {
      await agent.close();
    }
  }

  /** Prepares a writable snapshot on top of an input (scratch → empty). */
  private async prepareFrom(input: OutputResult | undefined): Promise<ActiveSnapshot> {
    if (!input || input.kind === "scratch") return this.deps.snapshotter.prepare(undefined);
    if (input.kind === "snapshot") return this.deps.snapshotter.prepare(input.id);
    // A writable copy of a local context: materialise it into a fresh snapshot.
    const active = await this.deps.snapshotter.prepare(undefined);
    await this.deps.snapshotter.withMounted(active.id, (dir) =>
      this.deps.runFileAction(copyAll(), { destRoot: dir, srcRoot: input.path }),
    );
    return active;
  }

  private async exec(
    op: ExecOp,
    inputs: readonly OutputResult[],
    platform: Platform,
    ctx: VertexContext,
  ): Promise<OutputResult[]> {
    const { snapshotter, executor } = this.deps;
    const actives: { id: SnapshotId; output: number }[] = [];
    const releases: (() => Promise<void>)[] = [];
    const containerMounts: ContainerMount[] = [];
    let rootfs: readonly MountSpec[] | undefined;
    const outputs: OutputResult[] = [];
    let ok = false;
    try {
      for (const m of op.mounts) {
        const mount = await this.execMount(m, inputs, actives, releases);
        if (!mount) continue;
        if (m.dest === "/") rootfs = mount.mounts;
        else containerMounts.push(mount);
      }
      if (!rootfs) throw new Error("exec op has no root mount");
      const secrets = await openExecSecrets(
        this.deps.scratchDir,
        op.mounts.filter((m): m is SecretMount => m.type === "secret"),
        op.mounts.filter((m): m is SshMount => m.type === "ssh"),
        op.meta,
        this.deps.session,
      );
      releases.push(() => secrets.close());
      containerMounts.push(...secrets.mounts);
      const result = await executor.run({
        rootfs,
        mounts: containerMounts,
        process: {
          args: op.meta.args,
          env: [...op.meta.env, ...proxyEnvVars(op.meta.proxyEnv), ...secrets.env],
          cwd: op.meta.cwd,
          user: op.meta.user,
          hostname: op.meta.hostname,
          extraHosts: op.meta.extraHosts,
          ulimits: op.meta.ulimits,
          shmSize: this.deps.execDefaults?.shmSize,
          cgroupParent: op.meta.cgroupParent ?? this.deps.execDefaults?.cgroupParent,
        },
        network: op.network,
        security: op.security,
        platform,
        onOutput: (fd, data) => ctx.log(fd, secrets.mask(data)),
        signal: ctx.signal,
      });
      const valid = op.meta.validExitCodes ?? [0];
      if (!valid.includes(result.exitCode)) throw new ExecFailedError(op.meta.args, result.exitCode);
      for (const a of actives) {
        if (a.output >= 0) {
          await snapshotter.commit(a.id);
          outputs[a.output] = { kind: "snapshot", id: a.id };
        }
      }
      ok = true;
      return outputs;
    } finally {
      for (const r of releases) await r().catch(() => {});
      for (const a of actives) if (!ok || a.output < 0) await snapshotter.remove(a.id).catch(() => {});
    }
  }

  private async execMount(
    m: Mount,
    inputs: readonly OutputResult[],
    actives: { id: SnapshotId; output: number }[],
    releases: (() => Promise<void>)[],
  ): Promise<ContainerMount | undefined> {
    const { snapshotter } = this.deps;
    const input = m.input === SCRATCH ? undefined : inputs[m.input];
    switch (m.type) {
      case "bind": {
        const selector = m.selector && m.selector !== "/" ? m.selector : "";
        if (!m.readonly || m.output >= 0) {
          const active = await this.prepareFrom(input);
          actives.push({ id: active.id, output: m.output });
          if (selector) throw new Error(`a writable mount of a sub-path (${selector}) is not supported yet`);
          return { dest: m.dest, mounts: active.mounts, readonly: false };
        }
        if (input?.kind === "directory") {
          return {
            dest: m.dest,
            mounts: [{ type: "bind", source: join(input.path, selector), options: ["rbind", "ro"] }],
            readonly: true,
          };
        }
        if (input?.kind === "snapshot") {
          if (!selector) return { dest: m.dest, mounts: await snapshotter.view(input.id), readonly: true };
          // A sub-path of a snapshot: mount the whole view on the host and bind the sub-path in.
          const dir = await this.hostMount(input.id, releases);
          return {
            dest: m.dest,
            mounts: [{ type: "bind", source: join(dir, selector), options: ["rbind", "ro"] }],
            readonly: true,
          };
        }
        const empty = await mkdtemp(join(this.deps.scratchDir, "empty-"));
        releases.push(() => rm(empty, { recursive: true, force: true }));
        return {
          dest: m.dest,
          mounts: [{ type: "bind", source: empty, options: ["rbind", "ro"] }],
          readonly: true,
        };
      }
      case "cache": {
        const lease = await this.deps.cacheMounts.acquire(m.cacheId, m.sharing, {
          mode: m.mode,
          uid: m.uid,
          gid: m.gid,
        });
        releases.push(() => lease.release());
        return {
          dest: m.dest,
          mounts: [{ type: "bind", source: lease.path, options: ["rbind", m.readonly ? "ro" : "rw"] }],
          readonly: m.readonly,
        };
      }
      case "tmpfs":
        return {
          dest: m.dest,
          mounts: [
            {
              type: "tmpfs",
              source: "tmpfs",
              options: ["nosuid", "nodev", ...(m.size > 0 ? [`size=${m.size}`] : [])],
            },
          ],
          readonly: false,
        };
      case "secret":
      case "ssh":
        // Made per run by openExecSecrets, from the session.
        return undefined;
    }
  }

  /** Mounts a committed snapshot on the host until the step's resources are released. */
  private hostMount(id: SnapshotId, releases: (() => Promise<void>)[]): Promise<string> {
    return new Promise<string>((resolveDir, rejectDir) => {
      let finish!: () => void;
      const held = new Promise<void>((r) => {
        finish = r;
      });
      const mounted = this.deps.snapshotter.withMounted(id, async (dir) => {
        resolveDir(dir);
        await held;
      });
      mounted.catch(rejectDir);
      releases.push(async () => {
        finish();
        await mounted.catch(() => {});
      });
    });
  }

  private async file(
    op: FileOp,
    inputs: readonly OutputResult[],
    _ctx: VertexContext,
  ): Promise<OutputResult[]> {
    const { snapshotter } = this.deps;
    const stepResults: OutputResult[] = [];
    const created: SnapshotId[] = [];
    const outputs: OutputResult[] = [];
    let ok = false;
    // An action whose result only the next action builds on (a COPY of several sources is one
    // action per source) continues on the same snapshot: one FileOp, one layer, as BuildKit makes it.
    const foldsIntoNext = (i: number): boolean => {
      const step = op.steps[i]!;
      const next = op.steps[i + 1];
      if (step.output >= 0 || !next?.inputIsAction || next.input !== i) return false;
      return op.steps.every(
        (s, j) =>
          j === i + 1 ||
          !((s.inputIsAction && s.input === i) || (s.secondaryIsAction && s.secondaryInput === i)),
      );
    };
    let carried: ActiveSnapshot | undefined;
    try {
      for (const [i, step] of op.steps.entries()) {
        const base = step.inputIsAction
          ? stepResults[step.input]
          : step.input === SCRATCH
            ? undefined
            : inputs[step.input];
        const src =
          step.secondaryInput === undefined
            ? undefined
            : step.secondaryIsAction
              ? stepResults[step.secondaryInput]
              : step.secondaryInput === SCRATCH
                ? undefined
                : inputs[step.secondaryInput];
        const active = carried ?? (await this.prepareFrom(base));
        if (!carried) created.push(active.id);
        carried = undefined;
        let links: DeferredLinks | undefined;
        await snapshotter.withMounted(active.id, async (destRoot) => {
          if (step.action.type !== "copy") return this.deps.runFileAction(step.action, { destRoot });
          if (src?.kind === "directory") {
            links = new DeferredLinks(destRoot);
            return this.deps.runFileAction(step.action, {
              destRoot,
              srcRoot: src.path,
              deferredLinks: links,
            });
          }
          if (src?.kind === "snapshot")
            return snapshotter.withMounted(src.id, (srcRoot) =>
              this.deps.runFileAction(step.action, { destRoot, srcRoot }),
            );
          const empty = await mkdtemp(join(this.deps.scratchDir, "empty-"));
          try {
            await this.deps.runFileAction(step.action, { destRoot, srcRoot: empty });
          } finally {
            await rm(empty, { recursive: true, force: true });
          }
        });
        if (links?.size) await links.apply(snapshotter.ownDir(active.id));
        const result: OutputResult = { kind: "snapshot", id: active.id };
        stepResults.push(result);
        if (foldsIntoNext(i)) {
          carried = active;
          continue;
        }
        await snapshotter.commit(active.id);
        if (step.output >= 0) outputs[step.output] = result;
      }
      ok = true;
      return outputs;
    } finally {
      // Intermediate steps that are not outputs are folded away; outputs stay.
      const keep = new Set(outputs.map((o) => (o.kind === "snapshot" ? o.id : undefined)));
      for (const id of created) if (!ok || !keep.has(id)) await snapshotter.remove(id).catch(() => {});
    }
  }

  /** Stacks each input's layers on the first input's, re-applying their diffs (layers stay separate). */
  private async merge(op: MergeOp, inputs: readonly OutputResult[]): Promise<OutputResult> {
    const { snapshotter, layerRecords } = this.deps;
    let top: SnapshotId | undefined;
    for (const idx of op.inputs) {
      const input = inputs[idx];
      if (!input || input.kind === "scratch") continue;
      if (input.kind === "directory") throw new Error("merging a local context directly is not supported");
      if (top === undefined) {
        top = input.id;
        continue;
      }
      for (const layer of await snapshotChain(snapshotter, input.id)) {
        const info = await snapshotter.applyLayer(top, snapshotter.diff(layer));
        const rec = await layerRecords.get(layer);
        if (rec) await layerRecords.put(info.id, rec);
        top = info.id;
      }
    }
    return top ? { kind: "snapshot", id: top } : { kind: "scratch" };
  }
}

/** The predefined proxy build args as the environment variables programs look for (both cases). */
function proxyEnvVars(p: ExecOp["meta"]["proxyEnv"]): string[] {
  if (!p) return [];
  const out: string[] = [];
  const add = (name: string, v: string | undefined) => {
    if (v !== undefined) out.push(`${name}=${v}`, `${name.toLowerCase()}=${v}`);
  };
  add("HTTP_PROXY", p.httpProxy);
  add("HTTPS_PROXY", p.httpsProxy);
  add("FTP_PROXY", p.ftpProxy);
  add("NO_PROXY", p.noProxy);
  add("ALL_PROXY", p.allProxy);
  return out;
}

/** Copies a whole tree (used to make a writable copy of a local context). */
function copyAll(): CopyAction {
  return {
    type: "copy",
    src: "/",
    dest: "/",
    followSymlink: false,
    dirCopyContents: true,
    attemptUnpackDockerCompatibility: false,
    createDestPath: true,
    allowWildcard: false,
    allowEmptyWildcard: false,
  };
}
