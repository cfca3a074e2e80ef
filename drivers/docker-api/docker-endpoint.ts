// Which Docker daemon a node talks to: a Docker context (the CLI's context store), or a host URL
// (`unix:///…`, `tcp://…`, `ssh://user@host`), resolved as the Docker CLI resolves them, and the
// Docker API client for it. ssh:// hosts are reached by running `docker system dial-stdio` on
// the remote over ssh (ssh-docker-transport.ts), so only sshd and the Docker CLI are needed there.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import type Docker from "dockerode";
import { parseSshDockerHost, SSH_DOCKER_API_HOST, SshDockerAgent } from "./ssh-docker-transport.js";

export interface DockerTlsFiles {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly verify: boolean;
}

export interface DockerEndpoint {
  /** The context name, or "" when a host URL was given directly. */
  readonly context: string;
  /** The daemon's address, e.g. unix:///var/run/docker.sock. */
  readonly host: string;
  readonly tls?: DockerTlsFiles;
}

export const DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock";

function configDir(env: NodeJS.ProcessEnv): string {
  return env.DOCKER_CONFIG ? resolve(env.DOCKER_CONFIG) : join(homedir(), ".docker");
}

export function isDockerHostUrl(s: string): boolean {
  return /^(unix|tcp|ssh|npipe|fd):\/\//.test(s);
}

/** The context the Docker CLI would use: DOCKER_CONTEXT, else config.json's currentContext. */
export function currentDockerContext(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DOCKER_HOST) return "default";
  if (env.DOCKER_CONTEXT) return env.DOCKER_CONTEXT;
  try {
    const cfg = JSON.parse(readFileSync(join(configDir(env), "config.json"), "utf8")) as {
      currentContext?: string;
    };
    if (cfg.currentContext) return cfg.currentContext;
  } catch {
    // No config.json (or an unreadable one) means the default context, as for the Docker CLI.
  }
  return "default";
}

/** Resolves a context name or host URL (default: the current context) to a daemon address. */
export function resolveDockerEndpoint(
  nameOrHost?: string,
  env: NodeJS.ProcessEnv = process.env,
): DockerEndpoint {
  const target = nameOrHost || currentDockerContext(env);
  if (isDockerHostUrl(target)) return { context: "", host: target, tls: tlsFromEnv(env) };
  if (target === "default") {
    return { context: "default", host: env.DOCKER_HOST || DEFAULT_DOCKER_HOST, tls: tlsFromEnv(env) };
  }
  const id = createHash("sha256").update(target).digest("hex");
  const metaFile = join(configDir(env), "contexts", "meta", id, "meta.json");
  let meta: { Endpoints?: { docker?: { Host?: string; SkipTLSVerify?: boolean } } };
  try {
    meta = JSON.parse(readFileSync(metaFile, "utf8"));
  } catch {
    throw new Error(
      `no Docker context named ${JSON.stringify(target)} (see \`docker context ls\`); give a context name or a Docker host such as unix:///var/run/docker.sock, tcp://HOST:2376 or ssh://USER@HOST`,
    );
  }
  const docker = meta.Endpoints?.docker;
  if (!docker?.Host) throw new Error(`Docker context ${target} has no docker endpoint`);
  const tlsDir = join(configDir(env), "contexts", "tls", id, "docker");
  const tls: DockerTlsFiles | undefined = existsSync(tlsDir)
    ? {
        ca: fileIfExists(join(tlsDir, "ca.pem")),
        cert: fileIfExists(join(tlsDir, "cert.pem")),
        key: fileIfExists(join(tlsDir, "key.pem")),
        verify: !docker.SkipTLSVerify,
      }
    : undefined;
  return { context: target, host: docker.Host, tls };
}

function fileIfExists(p: string): string | undefined {
  return existsSync(p) ? p : undefined;
}

function tlsFromEnv(env: NodeJS.ProcessEnv): DockerTlsFiles | undefined {
  if (!env.DOCKER_TLS_VERIFY && !env.DOCKER_CERT_PATH) return undefined;
  const dir = env.DOCKER_CERT_PATH || configDir(env);
  return {
    ca: fileIfExists(join(dir, "ca.pem")),
    cert: fileIfExists(join(dir, "cert.pem")),
    key: fileIfExists(join(dir, "key.pem")),
    verify: !!env.DOCKER_TLS_VERIFY,
  };
}

/** dockerode's connection options for an endpoint. */
export function dockerClientOptions(
  ep: DockerEndpoint,
  env: NodeJS.ProcessEnv = process.env,
): Docker.DockerOptions {
  const url = new URL(ep.host);
  switch (url.protocol) {
    case "unix:":
      return { socketPath: decodeURIComponent(url.pathname) };
    case "tcp:": {
      const tls = ep.tls;
      const port = Number(url.port || (tls ? 2376 : 2375));
      if (!tls) return { protocol: "http", host: url.hostname, port };
      return {
        protocol: "https",
        host: url.hostname,
        port,
        ca: tls.ca ? readFileSync(tls.ca) : undefined,
        cert: tls.cert ? readFileSync(tls.cert) : undefined,
        key: tls.key ? readFileSync(tls.key) : undefined,
      };
    }
    case "ssh:": {
      // docker-modem takes an HTTP agent (not in dockerode's types) for every request.
      const viaSsh = {
        protocol: "http" as const,
        host: SSH_DOCKER_API_HOST,
        agent: new SshDockerAgent(parseSshDockerHost(ep.host, env), env),
      };
      return viaSsh;
    }
    default:
      throw new Error(`unsupported Docker host ${ep.host}: use unix://, tcp:// or ssh://`);
  }
}

/** A Docker API client for the endpoint; dockerode (and the gRPC and SSH code it pulls in) loads on first use. */
export async function dockerClient(
  ep: DockerEndpoint,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Docker> {
  const { default: Docker } = await import("dockerode");
  return new Docker(dockerClientOptions(ep, env));
}
