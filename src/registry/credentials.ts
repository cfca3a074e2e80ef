// Registry credentials as the Docker CLI stores them: `$DOCKER_CONFIG/config.json` (`auths`,
// `credsStore`, `credHelpers`) and `docker-credential-*` helper programs.
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { DOCKER_HUB } from "../oci/image-ref.js";
import { DOCKER_HUB_API_HOST, DOCKER_HUB_AUTH_KEY } from "./hosts.js";

export interface RegistryCredentials {
  readonly username?: string;
  readonly password?: string;
  /** An OAuth2 refresh token (`docker login` with an identity provider); exchanged at the token server. */
  readonly identityToken?: string;
}

/** Answers "which credentials for this registry?"; undefined means anonymous. */
export type CredentialLookup = (registry: string) => Promise<RegistryCredentials | undefined>;

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

/** `$DOCKER_CONFIG`, else `~/.docker`. */
export function defaultDockerConfigDir(): string {
  return process.env.DOCKER_CONFIG || join(homedir(), ".docker");
}

/** The key Docker uses for a registry in `auths`/`credHelpers` and on a helper's stdin. */
export function credentialKey(registry: string): string {
  return registry === DOCKER_HUB || registry === "index.docker.io" || registry === DOCKER_HUB_API_HOST
    ? DOCKER_HUB_AUTH_KEY
    : registry;
}

/** Reduces an `auths` key (`https://host:5000/v1/`, `host:5000`) to `host[:port]`, as Docker's ConvertToHostname. */
export function authKeyHost(key: string): string {
  let s = key;
  if (s.startsWith("http://")) s = s.slice(7);
  else if (s.startsWith("https://")) s = s.slice(8);
  const slash = s.indexOf("/");
  return slash >= 0 ? s.slice(0, slash) : s;
}

/** Credentials from config.json and helpers in one Docker config directory. */
export class DockerConfigCredentials {
  private config: Promise<DockerConfigFile> | undefined;

  constructor(
    readonly configDir: string = defaultDockerConfigDir(),
    /** PATH to find `docker-credential-*` helpers on; the process's own by default. */
    private readonly helperPath?: string,
  ) {}

  readonly lookup: CredentialLookup = async (registry) => {
    const config = await this.load();
    const key = credentialKey(registry);
    const helper = config.credHelpers?.[key] ?? config.credHelpers?.[registry] ?? config.credsStore;
    if (helper) {
      const fromHelper = await runCredentialHelper(helper, key, this.helperPath);
      if (fromHelper) return fromHelper;
    }
    return fromAuthsEntry(config, key, registry);
  };

  private load(): Promise<DockerConfigFile> {
    this.config ??= readDockerConfig(join(this.configDir, "config.json"));
    return this.config;
  }
}

async function readDockerConfig(file: string): Promise<DockerConfigFile> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw err;
  }
  try {
    return JSON.parse(text) as DockerConfigFile;
  } catch (err) {
    throw new Error(`${file} is not valid JSON (${(err as Error).message}); fix or remove it`);
  }
}

function fromAuthsEntry(
  config: DockerConfigFile,
  key: string,
  registry: string,
): RegistryCredentials | undefined {
  const auths = config.auths ?? {};
  const wanted = authKeyHost(key);
  const hubAliases = new Set(["index.docker.io", DOCKER_HUB, DOCKER_HUB_API_HOST]);
  const entryKey =
    (key in auths ? key : undefined) ??
    (registry in auths ? registry : undefined) ??
    Object.keys(auths).find((k) => {
      const h = authKeyHost(k);
      return h === wanted || (hubAliases.has(wanted) && hubAliases.has(h));
    });
  if (entryKey === undefined) return undefined;
  const entry = auths[entryKey]!;
  let username = entry.username;
  let password = entry.password;
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0)
      throw new Error(`the "auth" entry for ${entryKey} in config.json is not base64 of user:password`);
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  if (entry.identitytoken) return { username, identityToken: entry.identitytoken };
  if (username === undefined && password === undefined) return undefined;
  return { username, password };
}

/**
 * Runs `docker-credential-NAME get` with the server URL on stdin. "Not found" answers mean
 * anonymous; a missing helper or any other failure is an error naming the helper, as in Docker.
 */
export function runCredentialHelper(
  name: string,
  serverUrl: string,
  path?: string,
): Promise<RegistryCredentials | undefined> {
  const program = `docker-credential-${name}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, ["get"], {
      stdio: ["pipe", "pipe", "pipe"],
      env: path === undefined ? process.env : { ...process.env, PATH: path },
    });
    let out = "";
    let errText = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (errText += d));
    child.on("error", (err) => {
      reject(new Error(`credential helper ${program} could not be run for ${serverUrl}: ${err.message}`));
    });
    child.on("close", (code) => {
      if (code !== 0) {
        const msg = (out + errText).trim();
        if (/credentials not found/i.test(msg)) return resolve(undefined);
        return reject(
          new Error(`credential helper ${program} failed for ${serverUrl}: ${msg || `exit ${code}`}`),
        );
      }
      let parsed: { Username?: string; Secret?: string };
      try {
        parsed = JSON.parse(out) as { Username?: string; Secret?: string };
      } catch {
        return reject(
          new Error(`credential helper ${program} printed something that is not JSON for ${serverUrl}`),
        );
      }
      if (!parsed.Secret && !parsed.Username) return resolve(undefined);
      // Docker's convention: a `<token>` user means the secret is an identity (refresh) token.
      if (parsed.Username === "<token>") return resolve({ identityToken: parsed.Secret });
      resolve({ username: parsed.Username, password: parsed.Secret });
    });
    child.stdin.on("error", () => {
      // The helper may exit without reading stdin; its exit status tells the story.
    });
    child.stdin.end(serverUrl);
  });
}
