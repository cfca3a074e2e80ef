// The client side of a session for a client and engine on one machine (the embedded builder, and
// the client end of a remote session): local directories, secrets, SSH agents, registry
// credentials from the client's Docker config, outputs to disk.
import { createHash, randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readFile, rename, rm } from "node:fs/promises";
import { request } from "node:http";
import { homedir, hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import { type Duplex, PassThrough, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { extractTarToDir } from "../archive/extract-dir.js";
import type { BuildRequest } from "../client/build-request.js";
import { DockerConfigCredentials, type RegistryCredentials } from "../registry/credentials.js";
import { type SyncOptions, type SyncStats, syncLocalContext } from "../source/local-sync.js";
import { type CacheDirAccess, HostCacheDirs } from "./cache-dir.js";
import { connectSshAgent, loadSshAgentSource, type SshAgentSource } from "./ssh-agent-source.js";
import { type BuildSession, CONTEXT_LOCAL_NAME, type ExportTarget, namedContextLocalName } from "./types.js";

export interface LocalSessionOptions {
  readonly request: BuildRequest;
  readonly env?: NodeJS.ProcessEnv;
  /** Where `dest=-` outputs go. */
  readonly stdout?: NodeJS.WritableStream;
  /** The Docker daemon socket for `--load` (default /var/run/docker.sock or DOCKER_HOST=unix://…). */
  readonly dockerSocket?: string;
  /** The Docker config directory whose credentials registries get (default: $DOCKER_CONFIG, else ~/.docker). */
  readonly dockerConfigDir?: string;
}

export class LocalSession implements BuildSession {
  readonly id = randomUUID();
  private readonly dirs = new Map<string, string>();
  private readonly env: NodeJS.ProcessEnv;
  private readonly sshAgents = new Map<string, SshAgentSource>();
  private credentials?: DockerConfigCredentials;
  readonly cacheDirs: CacheDirAccess;

  /** Throws when an `--ssh` path is neither an agent socket nor a usable private key file. */
  constructor(private readonly opts: LocalSessionOptions) {
    this.env = opts.env ?? process.env;
    const req = opts.request;
    this.cacheDirs = new HostCacheDirs(req);
    // Key files are read now, as Buildx does: a bad one fails before the build starts.
    for (const spec of req.ssh) this.sshAgents.set(spec.id, loadSshAgentSource(spec));
    if (req.contextPath !== "-" && !/^[a-z]+:\/\//.test(req.contextPath))
      this.dirs.set(CONTEXT_LOCAL_NAME, resolve(req.contextPath));
    for (const [name, ctx] of Object.entries(req.buildContexts)) {
      if (ctx.kind === "local") this.dirs.set(namedContextLocalName(name), resolve(ctx.path));
    }
  }

  /** Adds a local directory under a session name (e.g. a stdin tar unpacked by the client). */
  addLocalDir(name: string, dir: string): void {
    this.dirs.set(name, resolve(dir));
  }

  sharedKey(name: string): string {
    const dir = this.dirs.get(name);
    return createHash("sha256")
      .update(`${hostname()}\0${dir ?? name}`)
      .digest("hex");
  }

  localDirectory(name: string): string | undefined {
    return this.dirs.get(name);
  }

  async syncLocal(name: string, dest: string, opts: SyncOptions, _signal: AbortSignal): Promise<SyncStats> {
    const dir = this.dirs.get(name);
    if (!dir) throw new Error(`the client has no local directory named ${JSON.stringify(name)}`);
    return syncLocalContext(dir, dest, opts);
  }

  async getSecret(id: string): Promise<Buffer | undefined> {
    const spec = this.opts.request.secrets.find((s) => s.id === id);
    if (!spec) return undefined;
    if (spec.source.kind === "env") {
      const v = this.env[spec.source.name];
      return v === undefined ? undefined : Buffer.from(v);
    }
    return readFile(spec.source.path);
  }

  hasSsh(id: string): boolean {
    return this.sshAgents.has(id);
  }

  async openSshAgent(id: string): Promise<Duplex | undefined> {
    const source = this.sshAgents.get(id);
    return source && connectSshAgent(id, source, this.env);
  }

  registryCredentials(host: string): Promise<RegistryCredentials | undefined> {
    // The client's own Docker config, as `docker login` left it (auths, credsStore, credHelpers).
    this.credentials ??= new DockerConfigCredentials(
      this.opts.dockerConfigDir ?? (this.env.DOCKER_CONFIG || join(this.env.HOME || homedir(), ".docker")),
      this.env.PATH,
    );
    return this.credentials.lookup(host);
  }

  async openExport(target: ExportTarget): Promise<{ stream: Writable; done: Promise<void> }> {
    const output = this.opts.request.outputs[target.output];
    if (!output) throw new Error(`no output #${target.output} in the request`);
    const stream = new PassThrough();
    let done: Promise<void>;
    if (target.kind === "docker-load") {
      done = dockerLoad(stream, this.opts.dockerSocket ?? dockerSocketFromEnv(this.env));
    } else {
      const dest = "dest" in output ? output.dest : undefined;
      if (target.kind === "unpack-tar") {
        if (!dest || dest === "-") throw new Error(`output type=${output.type} needs dest=DIRECTORY`);
        done = extractTarToDir(stream, target.subdir ? resolve(dest, target.subdir) : resolve(dest));
      } else if (!dest || dest === "-") {
        const out = this.opts.stdout ?? process.stdout;
        done = pipeline(stream, out as Writable, { end: false });
      } else {
        done = writeFileAtomically(stream, resolve(dest));
      }
    }
    done.catch(() => {});
    return { stream, done };
  }
}

async function writeFileAtomically(stream: NodeJS.ReadableStream, path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${randomUUID().slice(0, 8)}`;
  try {
    await pipeline(stream, createWriteStream(tmp));
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

function dockerSocketFromEnv(env: NodeJS.ProcessEnv): string {
  const host = env.DOCKER_HOST;
  if (host?.startsWith("unix://")) return host.slice("unix://".length);
  return "/var/run/docker.sock";
}

/** `docker load`: POST the archive to the Engine API's /images/load and check its reply for errors. */
function dockerLoad(archive: NodeJS.ReadableStream, socketPath: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const req = request(
      {
        socketPath,
        path: "/images/load?quiet=1",
        method: "POST",
        headers: { "content-type": "application/x-tar" },
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          body += c;
        });
        res.on("end", () => {
          if ((res.statusCode ?? 500) >= 300)
            return reject(new Error(`docker load failed (${res.statusCode}): ${body.trim()}`));
          for (const line of body.split("\n")) {
            if (!line.trim()) continue;
            try {
              const msg = JSON.parse(line) as { error?: string; errorDetail?: { message?: string } };
              if (msg.error)
                return reject(new Error(`docker load failed: ${msg.errorDetail?.message ?? msg.error}`));
            } catch {
              // Non-JSON lines are progress text.
            }
          }
          resolvePromise();
        });
      },
    );
    req.on("error", (err) =>
      reject(new Error(`cannot reach the Docker daemon at ${socketPath} to load the image: ${err.message}`)),
    );
    pipeline(archive, req).catch(reject);
  });
}
