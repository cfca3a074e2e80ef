// Docker hosts at ssh://[user@]host[:port], reached as the Docker CLI reaches them: every HTTP
// connection of the Docker API is the stdio of `docker system dial-stdio` run on the remote, so the
// remote needs only sshd and the Docker CLI. Unlike docker-modem's own ssh mode (a new ssh login per
// request), one login (ssh2) carries all of a client's connections as channels; it holds the
// process open only while a channel is open. Logins use the user's agent (SSH_AUTH_SOCK) and
// unencrypted default keys in ~/.ssh, and the host key must be in known_hosts, as for ssh.

import { readFileSync } from "node:fs";
import { Agent, type ClientRequestArgs } from "node:http";
import { createRequire } from "node:module";
import { connect, type Socket } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import type { AnyAuthMethod, Client, ClientChannel } from "ssh2";
import { checkHostKey, knownHostsName, readKnownHosts } from "./known-hosts.js";

/** The Host header of API requests over ssh, as the Docker CLI sends it. */
export const SSH_DOCKER_API_HOST = "api.moby.localhost";
const DIAL_STDIO = "docker system dial-stdio";
/** The default identities ssh itself tries, in its order (encrypted ones are skipped). */
const DEFAULT_IDENTITIES = ["id_ed25519", "id_ecdsa", "id_rsa"];

type Ssh2 = typeof import("ssh2");
// ssh2 (CommonJS) loads only when a Docker host is reached over ssh.
const loadSsh2 = (): Ssh2 => createRequire(import.meta.url)("ssh2") as Ssh2;

export interface SshDockerHost {
  readonly host: string;
  readonly port: number;
  readonly username: string;
}

/** ssh://[user@]host[:port]; the user defaults to $USER as ssh's does. */
export function parseSshDockerHost(url: string, env: NodeJS.ProcessEnv): SshDockerHost {
  const u = new URL(url);
  if (u.pathname !== "" && u.pathname !== "/")
    throw new Error(`Docker host ${url}: an ssh:// host takes no path (ssh://[USER@]HOST[:PORT])`);
  const username = decodeURIComponent(u.username) || env.USER || env.LOGNAME;
  if (!username) throw new Error(`Docker host ${url}: give the login user (ssh://USER@HOST) or set USER`);
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port: Number(u.port || 22), username };
}

/** An HTTP agent whose connections are `docker system dial-stdio` channels over one ssh login. */
export class SshDockerAgent extends Agent {
  private login?: Promise<Client>;
  private socket?: Socket;
  /** Channels open or being opened: the ssh connection keeps the process alive only while > 0. */
  private users = 0;

  constructor(
    private readonly target: SshDockerHost,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    super();
  }

  private get where(): string {
    const { username, host, port } = this.target;
    return `ssh://${username}@${knownHostsName(host, port)}`;
  }

  override createConnection(
    _options: ClientRequestArgs,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    this.hold();
    this.dialStdio().then(
      (channel) => callback?.(null, channel),
      (err: Error) => {
        this.release();
        callback?.(err, undefined as unknown as Duplex);
      },
    );
    return undefined;
  }

  private hold(): void {
    this.users++;
    this.socket?.ref();
  }

  private release(): void {
    this.users--;
    if (this.users === 0) this.socket?.unref();
  }

  private async dialStdio(): Promise<ClientChannel> {
    const client = await this.connect();
    const channel = await new Promise<ClientChannel>((resolve, reject) =>
      client.exec(DIAL_STDIO, (err, ch) => (err ? reject(err) : resolve(ch))),
    );
    let stderr = "";
    channel.stderr.on("data", (c: Buffer) => {
      stderr = (stderr + c.toString()).slice(-2048);
    });
    channel.on("exit", (code: number | null) => {
      if (code)
        (channel as Duplex).destroy(
          new Error(
            `\`${DIAL_STDIO}\` on ${this.where} exited with ${code}: ${stderr.trim() || "no output"} (the Docker CLI must be on the login user's PATH there)`,
          ),
        );
    });
    channel.once("close", () => this.release());
    return channel;
  }

  private connect(): Promise<Client> {
    this.login ??= this.newLogin();
    return this.login;
  }

  private newLogin(): Promise<Client> {
    const { host, port, username } = this.target;
    const client = new (loadSsh2().Client)();
    const socket = connect(port, host);
    this.socket = socket;
    const methods = this.authMethods();
    const login = new Promise<Client>((resolve, reject) => {
      let hostKeyProblem: string | undefined;
      client.once("ready", () => resolve(client));
      client.on("error", (err: Error & { level?: string }) => {
        if (hostKeyProblem) return reject(new Error(hostKeyProblem));
        if (err.level === "client-authentication")
          return reject(
            new Error(
              `${this.where} refused the login as ${username} (tried ${methods.map(describeMethod).join(", ") || "nothing"}): add your key to ssh-agent (ssh-add) or to ${username}'s authorized_keys there`,
            ),
          );
        reject(new Error(`cannot reach ${this.where}: ${err.message}`));
      });
      client.on("close", () => {
        // The next request logs in again.
        if (this.login === login) this.login = undefined;
      });
      if (methods.length === 0) {
        reject(
          new Error(
            `no SSH credentials for ${this.where}: start ssh-agent and set SSH_AUTH_SOCK, or create ~/.ssh/id_ed25519`,
          ),
        );
        socket.destroy();
        return;
      }
      client.connect({
        sock: socket,
        username,
        authHandler: methods,
        readyTimeout: 30_000,
        hostVerifier: (key: Buffer) => {
          hostKeyProblem = this.hostKeyProblem(key);
          return hostKeyProblem === undefined;
        },
      });
    });
    return login;
  }

  /** Why the host's key is not trusted, or undefined when known_hosts lists it. */
  private hostKeyProblem(key: Buffer): string | undefined {
    const { host, port, username } = this.target;
    const userFile = join(this.home(), ".ssh", "known_hosts");
    const known = `${readKnownHosts(userFile)}\n${readKnownHosts("/etc/ssh/ssh_known_hosts")}`;
    const verdict = checkHostKey(known, host, port, key);
    const sshCmd = `ssh${port === 22 ? "" : ` -p ${port}`} ${username}@${host} true`;
    switch (verdict) {
      case "known":
        return undefined;
      case "unknown":
        return `the host key of ${this.where} is not in ${userFile}: connect once with \`${sshCmd}\` to check and accept it`;
      case "changed":
        return `the host key of ${this.where} does not match the one in ${userFile} (the host was reinstalled, or someone is in the middle): check it, then fix the entry with \`ssh-keygen -R ${knownHostsName(host, port)}\``;
      case "revoked":
        return `the host key of ${this.where} is marked @revoked in known_hosts`;
    }
  }

  private home(): string {
    return this.env.HOME || homedir();
  }

  private authMethods(): AnyAuthMethod[] {
    const { username } = this.target;
    const methods: AnyAuthMethod[] = [];
    if (this.env.SSH_AUTH_SOCK) methods.push({ type: "agent", username, agent: this.env.SSH_AUTH_SOCK });
    const { parseKey } = loadSsh2().utils;
    for (const name of DEFAULT_IDENTITIES) {
      let text: Buffer;
      try {
        text = readFileSync(join(this.home(), ".ssh", name));
      } catch {
        continue;
      }
      // A key with a passphrase cannot be asked for here; ssh-agent is the way to use it.
      if (parseKey(text) instanceof Error) continue;
      methods.push({ type: "publickey", username, key: text });
    }
    return methods;
  }
}

function describeMethod(m: AnyAuthMethod): string {
  return m.type === "agent"
    ? "the agent at SSH_AUTH_SOCK"
    : m.type === "publickey"
      ? "a key in ~/.ssh"
      : m.type;
}
