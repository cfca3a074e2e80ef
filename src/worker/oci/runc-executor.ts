// Runs RUN steps in containers with runc (or crun): bundle layout, mounts on the host, the runtime's
// lifecycle, output streaming, cancellation and cleanup after crashes.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chown, lstat, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { formatPlatform, hostPlatform, type Platform } from "../../oci/platform.js";
import { mountAll, mountPointsUnder, unmountAllUnder } from "../../snapshot/mount.js";
import type { ContainerMount, Executor, RunRequest, RunResult } from "../types.js";
import { recordMountStubs, removeMountStubs } from "./mount-stubs.js";
import { DEFAULT_HOSTNAME, hostResolvConf, hostsFileContent, resolvConfContent } from "./network-files.js";
import { nativePlatforms, probeEmulatedPlatforms } from "./platforms.js";
import { isNotFound, resolveInRoot } from "./root-path.js";
import {
  capabilitiesInMask,
  generateRuntimeSpec,
  type LinuxDevice,
  processEnv,
  type RuntimeMount,
} from "./runtime-spec.js";
import { allSettledOrThrow } from "./settle-all.js";
import { type ResolvedUser, resolveUser } from "./user.js";

const execFileP = promisify(execFile);

/** A bundle holds a few small files (config.json, hosts, resolv.conf) and the rootfs mount point. */
const BUNDLE_TMPFS_OPTIONS = ["size=16m", "mode=0700", "nosuid", "nodev", "noexec"];

export interface RuncExecutorOptions {
  /** Where bundles live (`<stateDir>/bundles/<id>`); owned by this executor alone. */
  readonly stateDir: string;
  /** Path (or name on PATH) of an OCI runtime with runc's command line: runc or crun. */
  readonly runtime?: string;
  /** The runtime's state directory (`--root`); defaults to `<stateDir>/runc`. */
  readonly rootDir?: string;
}

function abortError(): Error {
  const e = new Error("the run was cancelled");
  e.name = "AbortError";
  return e;
}

/** Devices a privileged step gets, as BuildKit's insecure mode adds them. */
function insecureDevices(): LinuxDevice[] {
  const devs: LinuxDevice[] = [
    { path: "/dev/kmsg", type: "c", major: 1, minor: 11 },
    { path: "/dev/cuse", type: "c", major: 10, minor: 203 },
    { path: "/dev/fuse", type: "c", major: 10, minor: 229 },
    { path: "/dev/kvm", type: "c", major: 10, minor: 232 },
    { path: "/dev/net/tun", type: "c", major: 10, minor: 200 },
    { path: "/dev/loop-control", type: "c", major: 10, minor: 237 },
  ];
  for (let i = 0; i < 8; i++) devs.push({ path: `/dev/loop${i}`, type: "b", major: 7, minor: i });
  return devs;
}

/** Go's architecture name for this host, as seccomp profiles are keyed. */
function hostArch(): string {
  return hostPlatform().architecture;
}

export class RuncExecutor implements Executor {
  readonly stateDir: string;
  readonly runtime: string;
  readonly rootDir: string;
  private readonly bundlesDir: string;
  private platforms?: Promise<{ native: Platform[]; emulated: Platform[] }>;
  private ownCaps?: Promise<bigint>;

  constructor(opts: RuncExecutorOptions) {
    this.stateDir = path.resolve(opts.stateDir);
    this.runtime = opts.runtime ?? "runc";
    this.rootDir = path.resolve(opts.rootDir ?? path.join(this.stateDir, "runc"));
    this.bundlesDir = path.join(this.stateDir, "bundles");
  }

  /** Native and emulated platforms, probed once per executor. */
  supportedPlatforms(): Promise<{ native: Platform[]; emulated: Platform[] }> {
    this.platforms ??= Promise.all([nativePlatforms(), probeEmulatedPlatforms()]).then(
      ([native, emulated]) => ({
        native,
        emulated,
      }),
    );
    return this.platforms;
  }

  private runtimeArgs(...args: string[]): string[] {
    return ["--root", this.rootDir, ...args];
  }

  private async runtimeCommand(...args: string[]): Promise<string> {
    const { stdout } = await execFileP(this.runtime, this.runtimeArgs(...args));
    return stdout;
  }

  /**
   * Removes what a crashed engine left behind: containers in the runtime's state dir, mounts under
   * the bundles dir, and the bundles themselves. Call before the first run.
   */
  async cleanupStale(): Promise<void> {
    await mkdir(this.rootDir, { recursive: true });
    // The runtime keeps one directory per container under its root: none means nothing to list,
    // which saves starting the runtime on every engine start.
    if ((await readdir(this.rootDir)).length > 0) {
      let ids: string[] = [];
      try {
        ids = (await this.runtimeCommand("list", "-q")).split("\n").filter((s) => s.trim() !== "");
      } catch (err) {
        throw new Error(`cannot list containers with ${this.runtime}: ${(err as Error).message}`);
      }
      for (const id of ids) await this.destroyContainer(id);
    }
    if ((await mountPointsUnder(this.bundlesDir)).length > 0) {
      await unmountAllUnder(this.bundlesDir);
      if ((await mountPointsUnder(this.bundlesDir)).length > 0) {
        throw new Error(`mounts remain under ${this.bundlesDir}; unmount them before starting the engine`);
      }
    }
    await rm(this.bundlesDir, { recursive: true, force: true });
    await mkdir(this.bundlesDir, { recursive: true });
  }

  private async destroyContainer(id: string): Promise<void> {
    await this.runtimeCommand("kill", id, "KILL").catch(() => {});
    await this.runtimeCommand("delete", "-f", id).catch(() => {});
  }

  private async checkPlatform(platform: Platform): Promise<void> {
    // Variants of the host's own architecture (amd64/v2, ...) run natively or fail at exec, as with BuildKit.
    if (platform.architecture === hostPlatform().architecture) return;
    const { native, emulated } = await this.supportedPlatforms();
    const runs = [...native, ...emulated];
    if (runs.some((p) => p.architecture === platform.architecture)) return;
    throw new Error(
      `cannot run ${formatPlatform(platform)} programs on this ${formatPlatform(hostPlatform())} host, which runs ${runs.map(formatPlatform).join(", ")}: ` +
        "no emulator is registered for it; install QEMU user emulation (binfmt_misc), e.g. with tonistiigi/binfmt",
    );
  }

  async run(req: RunRequest): Promise<RunResult> {
    if (req.signal?.aborted) throw abortError();
    await this.checkPlatform(req.platform);
    const id = `kiln-${randomBytes(12).toString("hex")}`;
    const bundle = path.join(this.bundlesDir, id);
    const rootfs = path.join(bundle, "rootfs");
    await mkdir(bundle, { recursive: true });
    let stubs: Awaited<ReturnType<typeof recordMountStubs>> = [];
    let result: RunResult | undefined;
    let failure: unknown;
    try {
      // A step's config.json holds its environment, secrets given as env vars included: the bundle
      // lives in memory, for the step's life only, so that those never reach the engine's disk.
      await mountAll([{ type: "tmpfs", source: "tmpfs", options: BUNDLE_TMPFS_OPTIONS }], bundle);
      await mkdir(rootfs);
      await mountAll(req.rootfs, rootfs);
      const user = await resolveUser(rootfs, req.process.user);
      await this.ensureWorkingDir(rootfs, req.process.cwd, user);
      const spec = await this.buildSpec(id, bundle, req, user);
      [, stubs] = await allSettledOrThrow([
        writeFile(path.join(bundle, "config.json"), JSON.stringify(spec)),
        recordMountStubs(
          rootfs,
          spec.mounts.map((m) => m.destination),
        ),
      ]);
      result = await this.runContainer(id, bundle, req);
    } catch (err) {
      failure = err;
    }
    // Cleanup runs on every path; its own failure is reported only when the run itself succeeded.
    try {
      await this.cleanupRun(id, bundle, stubs);
    } catch (err) {
      failure ??= err;
    }
    if (failure !== undefined || result === undefined) throw failure;
    return result;
  }

  private async buildSpec(id: string, bundle: string, req: RunRequest, user: ResolvedUser) {
    const p = req.process;
    const hostname = p.hostname || DEFAULT_HOSTNAME;
    const hostsPath = path.join(bundle, "hosts");
    const resolvConfPath = path.join(bundle, "resolv.conf");
    await allSettledOrThrow([
      writeFile(hostsPath, hostsFileContent(hostname, p.extraHosts ?? [])),
      hostResolvConf(req.network).then((conf) =>
        writeFile(resolvConfPath, resolvConfContent(conf, req.network)),
      ),
    ]);
    const mounts: RuntimeMount[] = [];
    for (const [i, m] of req.mounts.entries()) mounts.push(await this.containerMount(bundle, i, m));
    const insecure = req.security === "insecure";
    return generateRuntimeSpec({
      id,
      args: p.args,
      env: processEnv(p.env, user.home),
      cwd: path.posix.resolve("/", p.cwd || "/"),
      user,
      hostname,
      network: req.network,
      security: req.security,
      hostArch: hostArch(),
      rootPath: "rootfs",
      hostsPath,
      resolvConfPath,
      mounts,
      ulimits: p.ulimits,
      shmSize: p.shmSize,
      cgroupParent: p.cgroupParent,
      allCapabilities: insecure ? capabilitiesInMask(await this.ownCapabilities()) : undefined,
      hostDevices: insecure ? insecureDevices() : undefined,
    });
  }

  /** The engine's effective capabilities, read once. */
  private ownCapabilities(): Promise<bigint> {
    this.ownCaps ??= readFile("/proc/self/status", "utf8").then((s) => {
      const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(s)?.[1];
      if (!hex) throw new Error("cannot read the engine's capabilities from /proc/self/status");
      return BigInt(`0x${hex}`);
    });
    return this.ownCaps;
  }

  /**
   * A single bind or tmpfs goes to the runtime as is; anything else (overlays for cache mounts,
   * stacked mounts) is mounted on the host inside the bundle and bound in, since the runtime
   * only mounts one source per destination.
   */
  private async containerMount(bundle: string, index: number, m: ContainerMount): Promise<RuntimeMount> {
    const dest = path.posix.resolve("/", m.dest);
    const ro = (options: readonly string[]) =>
      m.readonly && !options.includes("ro") ? [...options.filter((o) => o !== "rw"), "ro"] : [...options];
    const only = m.mounts.length === 1 ? m.mounts[0]! : undefined;
    if (only?.type === "bind") {
      const options =
        only.options.includes("bind") || only.options.includes("rbind")
          ? only.options
          : ["rbind", ...only.options];
      return { destination: dest, type: "bind", source: only.source, options: ro(options) };
    }
    if (only?.type === "tmpfs") {
      return { destination: dest, type: "tmpfs", source: "tmpfs", options: ro(only.options) };
    }
    if (m.mounts.length === 0) throw new Error(`mount at ${dest} has no source`);
    const hostDir = path.join(bundle, "mnt", String(index));
    await mkdir(hostDir, { recursive: true });
    await mountAll(m.mounts, hostDir);
    return { destination: dest, type: "bind", source: hostDir, options: ro(["rbind"]) };
  }

  /** Creates the working directory's missing components, owned by the step's user, as BuildKit does. */
  private async ensureWorkingDir(rootfs: string, cwd: string, user: ResolvedUser): Promise<void> {
    const parts = path.posix
      .resolve("/", cwd || "/")
      .split("/")
      .filter(Boolean);
    let current = "/";
    for (const part of parts) {
      current = path.posix.join(current, part);
      const host = await resolveInRoot(rootfs, current);
      try {
        const st = await lstat(host);
        if (!st.isDirectory()) {
          throw new Error(`working directory ${cwd}: ${current} exists in the image and is not a directory`);
        }
      } catch (err) {
        if (!isNotFound(err)) throw err;
        await mkdir(host, { mode: 0o755 });
        await chown(host, user.uid, user.gid);
      }
    }
  }

  private runContainer(id: string, bundle: string, req: RunRequest): Promise<RunResult> {
    const logPath = path.join(bundle, "runtime.log");
    return new Promise<RunResult>((resolve, reject) => {
      const child = spawn(
        this.runtime,
        this.runtimeArgs(
          "--log",
          logPath,
          "--log-format",
          "json",
          "run",
          "--bundle",
          bundle,
          "--no-new-keyring",
          id,
        ),
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      let exited = false;
      let aborted = false;
      let killing: Promise<void> | undefined;
      child.stdout!.on("data", (d: Buffer) => req.onOutput?.(1, d));
      child.stderr!.on("data", (d: Buffer) => req.onOutput?.(2, d));
      const onAbort = () => {
        aborted = true;
        killing ??= this.killWhileRunning(id, child, () => exited);
      };
      req.signal?.addEventListener("abort", onAbort, { once: true });
      // An abort during setup fired before the listener existed.
      if (req.signal?.aborted) onAbort();
      child.once("error", (err) => {
        exited = true;
        req.signal?.removeEventListener("abort", onAbort);
        reject(new Error(`cannot start the OCI runtime ${this.runtime}: ${err.message}`));
      });
      child.once("close", (code, sig) => {
        exited = true;
        req.signal?.removeEventListener("abort", onAbort);
        void (async () => {
          await killing;
          if (aborted) return reject(abortError());
          if (code === null) return reject(new Error(`the OCI runtime ${this.runtime} was killed by ${sig}`));
          if (code !== 0) {
            const failure = await this.runtimeFailure(logPath);
            if (failure)
              return reject(
                new Error(`${this.runtime} could not run ${JSON.stringify(req.process.args[0])}: ${failure}`),
              );
          }
          resolve({ exitCode: code });
        })();
      });
    });
  }

  /**
   * Kills the container's processes until the runtime exits. The container may not exist yet (still
   * being created), so `kill` is retried; a runtime stuck beyond that is killed itself and its
   * leftovers go with `delete -f` in cleanup.
   */
  private async killWhileRunning(id: string, child: ChildProcess, exited: () => boolean): Promise<void> {
    const deadline = Date.now() + 5000;
    while (!exited()) {
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        return;
      }
      await this.runtimeCommand("kill", id, "KILL").catch(() => {});
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** The runtime's own error message (not the process's), from its JSON log. */
  private async runtimeFailure(logPath: string): Promise<string | undefined> {
    const text = await readFile(logPath, "utf8").catch(() => "");
    let last: string | undefined;
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      try {
        const entry = JSON.parse(line) as { level?: string; msg?: string };
        if ((entry.level === "error" || entry.level === "fatal") && entry.msg) last = entry.msg;
      } catch {
        // Not JSON: crun and older runtimes may write plain text.
      }
    }
    return last;
  }

  private async cleanupRun(id: string, bundle: string, stubs: Awaited<ReturnType<typeof recordMountStubs>>) {
    const errors: unknown[] = [];
    try {
      // `run` deletes its container when it ends normally; state left means it was killed or crashed.
      if (
        await lstat(path.join(this.rootDir, id)).then(
          () => true,
          () => false,
        )
      )
        await this.destroyContainer(id);
    } catch (err) {
      errors.push(err);
    }
    try {
      await removeMountStubs(stubs);
    } catch (err) {
      errors.push(err);
    }
    try {
      await unmountAllUnder(bundle);
      // Never delete through a mount that is still there: it could be a snapshot or a host directory.
      if ((await mountPointsUnder(bundle)).length === 0) await rm(bundle, { recursive: true, force: true });
      else errors.push(new Error(`mounts remain under ${bundle}; they are removed at the next start`));
    } catch (err) {
      errors.push(err);
    }
    if (errors.length > 0) {
      throw new AggregateError(
        errors,
        `cleaning up after run ${id} failed: ${errors.map(String).join("; ")}`,
      );
    }
  }

  /** Bundles present right now (for diagnostics and tests). */
  async bundleIds(): Promise<string[]> {
    return readdir(this.bundlesDir).catch(() => []);
  }
}
