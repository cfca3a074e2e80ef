// How git reaches a source's remote: the HTTP Authorization header from the build's secrets
// (BuildKit's GIT_AUTH_HEADER / GIT_AUTH_TOKEN, per host first), the SSH agent socket, and a
// temporary known_hosts file from `git.knownsshhosts`.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { GitRunOptions } from "./git-command.js";
import type { GitSourceSpec } from "./git-source-spec.js";

/** A secret's value by id, or undefined when the client has none (BuildSession.getSecret). */
export type GitSecretLookup = (id: string) => Promise<Buffer | undefined>;

export interface GitRemoteAccessOptions {
  /** The SSH agent socket for ssh remotes (a socket forwarding the client's agent). */
  readonly sshAuthSock?: string;
  readonly getSecret?: GitSecretLookup;
}

export interface GitRemoteAccess {
  /** Options for every git command that talks to the remote. */
  readonly run: Pick<GitRunOptions, "sshAuthSock" | "knownHostsFile" | "config">;
  /** Removes the temporary known_hosts file. */
  close(): Promise<void>;
}

function remoteHost(remote: string): string | undefined {
  try {
    return new URL(remote).host;
  } catch {
    return undefined; // scp-style remotes are ssh: no HTTP auth applies
  }
}

/**
 * The `http.<url>.extraheader` BuildKit configures: the first secret found among
 * `<header>.<host>`, `<token>.<host>`, `<header>`, `<token>`; a token becomes basic auth for
 * `x-access-token`.
 */
async function authHeaderConfig(
  spec: GitSourceSpec,
  getSecret: GitSecretLookup | undefined,
): Promise<[string, string][]> {
  if (!getSecret || !/^https?:\/\//.test(spec.remote)) return [];
  const host = remoteHost(spec.remote);
  const names: { name: string; token: boolean }[] = [];
  if (spec.authHeaderSecret && host) names.push({ name: `${spec.authHeaderSecret}.${host}`, token: false });
  if (spec.authTokenSecret && host) names.push({ name: `${spec.authTokenSecret}.${host}`, token: true });
  if (spec.authHeaderSecret) names.push({ name: spec.authHeaderSecret, token: false });
  if (spec.authTokenSecret) names.push({ name: spec.authTokenSecret, token: true });
  for (const { name, token } of names) {
    const value = await getSecret(name);
    if (value === undefined) continue;
    const header = token
      ? `basic ${Buffer.from(`x-access-token:${value.toString("utf8")}`).toString("base64")}`
      : value.toString("utf8");
    return [[`http.${tokenScope(spec.remote)}.extraheader`, `Authorization: ${header}`]];
  }
  return [];
}

/** The URL prefix a token is good for: the remote, or all of github.com as BuildKit allows. */
function tokenScope(remote: string): string {
  for (const prefix of ["https://github.com/", "https://www.github.com/"])
    if (remote.startsWith(prefix)) return prefix;
  return remote;
}

export async function openGitRemoteAccess(
  spec: GitSourceSpec,
  opts: GitRemoteAccessOptions = {},
): Promise<GitRemoteAccess> {
  const config = await authHeaderConfig(spec, opts.getSecret);
  let knownHostsDir: string | undefined;
  let knownHostsFile: string | undefined;
  if (spec.knownSshHosts !== "") {
    knownHostsDir = await mkdtemp(join(tmpdir(), "kiln-known-hosts-"));
    knownHostsFile = join(knownHostsDir, "known_hosts");
    const text = spec.knownSshHosts.endsWith("\n") ? spec.knownSshHosts : `${spec.knownSshHosts}\n`;
    await writeFile(knownHostsFile, text, { mode: 0o600 });
  }
  return {
    run: { sshAuthSock: opts.sshAuthSock, knownHostsFile, config },
    close: async () => {
      if (knownHostsDir) await rm(knownHostsDir, { recursive: true, force: true });
    },
  };
}
