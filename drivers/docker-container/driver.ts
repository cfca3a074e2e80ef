// The docker-container driver: the node's engine runs as kilnd in a privileged container
// `kiln_engine_<node>` on a Docker daemon (local socket, tcp:// or ssh://), with its state in the
// named volume `kiln_engine_<node>_state`; the client reaches it through `docker exec … kilnd
// dial-stdio` over the Docker API (or, on this host, its published socket: host-socket.ts). The
// Docker host's registry TLS directories (/etc/docker/certs.d) are mounted read-only into the
// container, so the engine trusts the registries that the Docker daemon beside it trusts.
import { rm } from "node:fs/promises";
import type { Duplex } from "node:stream";
import type Docker from "dockerode";
import * as tarStream from "tar-stream";
import { dialEngine } from "../../src/client/dial-engine.js";
import type { BuildEngine } from "../../src/engine/types.js";
import { type DockerEndpoint, dockerClient, resolveDockerEndpoint } from "../docker-api/docker-endpoint.js";
import { execCollect, execDuplex } from "../docker-api/exec-stream.js";
import {
  type Driver,
  type DriverFactory,
  type DriverFeatures,
  type DriverInfo,
  engineFeatures,
  type InitConfig,
  type RemoveOptions,
  validateDriverOptions,
} from "../driver.js";
import { ensureEngineImage } from "./engine-image.js";
import { engineHostConfig, isPrivilegeRefusal, type PrivilegeMode } from "./host-config.js";
import { ENGINE_SOCKET_DIR, hostSocketDir, hostSocketPath, socketAnswers } from "./host-socket.js";
import { type ContainerSettings, containerSettings, DOCKER_CONTAINER_OPTIONS } from "./options.js";

export const CONTAINER_PREFIX = "kiln_engine_";
/** Where kilnd keeps its state in the container (kilnd's default --root). */
export const ENGINE_STATE_DIR = "/var/lib/kiln";
export const ENGINE_CONFIG_FILE = "/etc/kiln/kilnd.toml";
/** Docker's per-registry TLS directories on the Docker host, read by the engine at the same path. */
export const DOCKER_CERTS_DIR = "/etc/docker/certs.d";
/** Readiness probe: tries, and the step of its linear backoff. */
const PROBE_TRIES = 15;
const PROBE_STEP_MS = 150;

export function containerName(node: string): string {
  return `${CONTAINER_PREFIX}${node}`;
}

export function volumeName(node: string): string {
  return `${containerName(node)}_state`;
}

export const dockerContainerFactory: DriverFactory = {
  name: "docker-container",
  usage: () => "docker-container: the engine runs in a container on a Docker daemon",
  priority: (endpoint) => (endpoint === "" || /^(unix|tcp|ssh):\/\//.test(endpoint) ? 30 : 20),
  allowsInstances: true,
  options: DOCKER_CONTAINER_OPTIONS,
  create(config: InitConfig): Driver {
    validateDriverOptions(this, config.driverOpts);
    return new DockerContainerDriver(config, containerSettings(config.driverOpts));
  },
};

function statusCode(err: unknown): number | undefined {
  return (err as { statusCode?: number })?.statusCode;
}

/** Docker refused a bind mount because its source does not exist on the Docker host. */
function isMissingBindSource(err: unknown): boolean {
  return statusCode(err) === 400 && /bind source path does not exist/i.test((err as Error)?.message ?? "");
}

export class DockerContainerDriver implements Driver {
  readonly factory = dockerContainerFactory;
  private readonly endpoint: DockerEndpoint;
  private clientCache?: Promise<Docker>;

  constructor(
    readonly config: InitConfig,
    private readonly settings: ContainerSettings,
  ) {
    this.endpoint = resolveDockerEndpoint(config.endpoint, config.env);
  }

  get containerName(): string {
    return containerName(this.config.name);
  }

  get volumeName(): string {
    return volumeName(this.config.name);
  }

  /** The Docker daemon this node lives on (dockerode loads on first use; see src/client/dial-engine.ts). */
  docker(): Promise<Docker> {
    this.clientCache ??= dockerClient(this.endpoint, this.config.env);
    return this.clientCache;
  }

  private async container(): Promise<Docker.Container> {
    return (await this.docker()).getContainer(this.containerName);
  }

  private async inspect(): Promise<Docker.ContainerInspectInfo | undefined> {
    try {
      return await (await this.container()).inspect();
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw this.unreachable(err);
    }
  }

  private unreachable(err: unknown): Error {
    if (statusCode(err) !== undefined) return err as Error;
    return new Error(`cannot reach the Docker daemon at ${this.endpoint.host}: ${(err as Error).message}`);
  }

  async bootstrap(log: (line: string) => void = () => {}): Promise<void> {
    let state = await this.inspect();
    if (!state) {
      await this.createContainer(log, "privileged");
      state = await this.inspect();
    }
    if (!state?.State.Running) {
      log(`starting container ${this.containerName}`);
      try {
        await this.start();
      } catch (err) {
        if (!isPrivilegeRefusal(err) || !state?.HostConfig.Privileged) throw err;
        log(
          `the Docker host cannot start privileged containers; granting ${this.containerName} every capability it allows instead`,
        );
        await (await this.container()).remove({ force: true });
        await this.createContainer(log, "capabilities");
        await this.start();
      }
    }
    await this.waitReady();
  }

  private async createContainer(log: (line: string) => void, mode: PrivilegeMode): Promise<void> {
    const s = this.settings;
    let image = s.image;
    if (image) await this.ensurePulled(image, log);
    else image = await ensureEngineImage(await this.docker(), log);
    try {
      await (await this.docker()).createVolume({
        Name: this.volumeName,
        Labels: { "org.kiln.engine-state": this.config.name },
      });
    } catch (err) {
      if (statusCode(err) !== 409) throw err;
    }
    log(`creating container ${this.containerName}`);
    const state: Docker.MountSettings = { Type: "volume", Source: this.volumeName, Target: ENGINE_STATE_DIR };
    const certs: Docker.MountSettings = {
      Type: "bind",
      Source: DOCKER_CERTS_DIR,
      Target: DOCKER_CERTS_DIR,
      ReadOnly: true,
    };
    try {
      let container: Docker.Container;
      try {
        container = await (await this.docker()).createContainer(
          this.containerSpec(image, [state, certs], mode),
        );
      } catch (err) {
        if (!isMissingBindSource(err)) throw err;
        // A Docker host without certs.d trusts no extra registry CAs: neither does the engine.
        log(`the Docker host has no ${DOCKER_CERTS_DIR}; the engine trusts only public CAs for registries`);
        container = await (await this.docker()).createContainer(this.containerSpec(image, [state], mode));
      }
      if (this.config.configFile !== undefined) await this.copyConfig(container, this.config.configFile);
    } catch (err) {
      // 409: another CLI created it at the same moment; it will be started below.
      if (statusCode(err) !== 409) throw err;
    }
  }

  private containerSpec(
    image: string,
    mounts: Docker.MountConfig,
    mode: PrivilegeMode,
  ): Docker.ContainerCreateOptions {
    return {
      name: this.containerName,
      Image: image,
      Cmd: ["--root", ENGINE_STATE_DIR, ...this.config.flags],
      Env: [...this.settings.env],
      Labels: { "org.kiln.engine": this.config.name },
      HostConfig: engineHostConfig(
        this.settings,
        mounts,
        mode,
        this.socketDir ? [`${this.socketDir}:${ENGINE_SOCKET_DIR}`] : [],
      ),
    };
  }

  private async start(): Promise<void> {
    try {
      await (await this.container()).start();
    } catch (err) {
      // 304: started meanwhile by another client or by its restart policy.
      if (statusCode(err) !== 304) throw err;
    }
  }

  private async ensurePulled(image: string, log: (line: string) => void): Promise<void> {
    try {
      await (await this.docker()).getImage(image).inspect();
      return;
    } catch (err) {
      if (statusCode(err) !== 404) throw this.unreachable(err);
    }
    log(`pulling ${image}`);
    try {
      const docker = await this.docker();
      const stream = await docker.pull(image);
      await new Promise<void>((resolve, reject) =>
        docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve())),
      );
    } catch (err) {
      throw new Error(`cannot pull engine image ${image}: ${(err as Error).message}`);
    }
  }

  private async copyConfig(container: Docker.Container, contents: string): Promise<void> {
    const pack = tarStream.pack();
    pack.entry({ name: "etc/kiln/", type: "directory", mode: 0o755 });
    pack.entry({ name: ENGINE_CONFIG_FILE.slice(1), mode: 0o644 }, contents);
    pack.finalize();
    await container.putArchive(pack as unknown as NodeJS.ReadableStream, { path: "/" });
  }

  /** Waits until kilnd answers through `docker exec` (Buildx's probe: up to 15 tries, linear backoff). */
  private async waitReady(): Promise<void> {
    let last = "";
    for (let attempt = 1; attempt <= PROBE_TRIES; attempt++) {
      try {
        const r = await execCollect(await this.container(), ["kilnd", "dial-stdio"]);
        if (r.exitCode === 0) return;
        last = (r.stderr || r.stdout).trim();
      } catch (err) {
        last = (err as Error).message;
      }
      const state = await this.inspect();
      if (state && !state.State.Running && !state.State.Restarting) {
        const logs = await this.tailLogs();
        throw new Error(
          `engine container ${this.containerName} exited (code ${state.State.ExitCode})${logs ? `:\n${logs}` : ""}`,
        );
      }
      await new Promise((r) => setTimeout(r, attempt * PROBE_STEP_MS));
    }
    throw new Error(`engine in ${this.containerName} did not become ready: ${last || "no answer"}`);
  }

  private async tailLogs(): Promise<string> {
    try {
      const buf = (await (
        await this.container()
      ).logs({
        stdout: true,
        stderr: true,
        tail: 20,
      })) as unknown as Buffer;
      // Non-TTY logs are framed like exec output; strip the 8-byte headers.
      const lines: string[] = [];
      for (let at = 0; at + 8 <= buf.length; ) {
        const size = buf.readUInt32BE(at + 4);
        lines.push(buf.subarray(at + 8, at + 8 + size).toString());
        at += 8 + size;
      }
      return lines.join("").trim();
    } catch {
      return "";
    }
  }

  /** The host directory where this node's engine socket appears, when builds may dial it directly. */
  private get socketDir(): string | undefined {
    return hostSocketDir(this.endpoint, this.containerName);
  }

  /** The engine's socket on this host, if it answers now. */
  private async answeringHostSocket(): Promise<string | undefined> {
    const dir = this.socketDir;
    if (!dir) return undefined;
    const path = hostSocketPath(dir);
    return (await socketAnswers(path)) ? path : undefined;
  }

  async info(): Promise<DriverInfo> {
    // An engine answering on its published socket runs; asking Docker would cost far more.
    if (await this.answeringHostSocket()) return { status: "running" };
    let state: Docker.ContainerInspectInfo | undefined;
    try {
      state = await this.inspect();
    } catch (err) {
      return { status: "inactive", detail: (err as Error).message };
    }
    if (!state) return { status: "inactive" };
    const s = state.State;
    if (s.Running) return { status: "running" };
    if (s.Restarting) return { status: "starting" };
    if (s.Status === "removing") return { status: "stopping" };
    return { status: "stopped" };
  }

  async version(): Promise<string> {
    const r = await execCollect(await this.container(), ["kilnd", "version"]);
    if (r.exitCode !== 0)
      throw new Error(`kilnd version in ${this.containerName}: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
    return parseKilndVersion(r.stdout);
  }

  async stop(force: boolean): Promise<void> {
    try {
      if (force) await (await this.container()).kill();
      else await (await this.container()).stop();
    } catch (err) {
      // 304: already stopped; 404: never created; 409 (kill): not running.
      if (![304, 404, 409].includes(statusCode(err) ?? 0)) throw this.unreachable(err);
    }
  }

  async rm(opts: RemoveOptions): Promise<void> {
    if (!opts.keepDaemon) {
      try {
        if (!opts.force) await this.stop(false);
        await (await this.container()).remove({ force: true, v: false });
      } catch (err) {
        if (statusCode(err) !== 404) throw this.unreachable(err);
      }
    }
    if (!opts.keepState && !opts.keepDaemon) {
      try {
        await (await this.docker()).getVolume(this.volumeName).remove();
      } catch (err) {
        if (statusCode(err) !== 404) throw this.unreachable(err);
      }
    }
    if (!opts.keepDaemon && this.socketDir) await rm(this.socketDir, { recursive: true, force: true });
  }

  async dial(): Promise<Duplex> {
    return execDuplex(await this.container(), ["kilnd", "dial-stdio"]);
  }

  async engine(): Promise<BuildEngine> {
    const socket = await this.answeringHostSocket();
    if (socket) {
      try {
        return await dialEngine({ unix: socket });
      } catch {
        // Gone between the probe and the dial: the exec path reports what is wrong, if anything.
      }
    }
    return dialEngine({ duplex: () => this.dial() });
  }

  features(): DriverFeatures {
    return engineFeatures(this.settings.defaultLoad);
  }
}

/** `kilnd github.com/kiln-build/kiln v0.1.0 abc123` → `v0.1.0`. */
export function parseKilndVersion(line: string): string {
  const m = /\s(v\S+)/.exec(line.trim());
  if (!m) throw new Error(`unexpected kilnd version output: ${JSON.stringify(line.trim())}`);
  return m[1]!;
}
