// A private OpenSSH server on 127.0.0.1 and a real ssh-agent for tests: sshd runs from a config of
// the test's own (generated host key, key-only login with generated client keys, a random port),
// so tests exercise the real ssh protocol without touching the machine's ssh setup.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { type AddressInfo, connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** The key types ssh-keygen makes that an agent must be able to sign with. */
export type SshKeyType = "ed25519" | "ecdsa" | "rsa";

export interface SshdOptions {
  /** Client keys to generate, all accepted by sshd (default: one ed25519 key). */
  readonly clientKeyTypes?: readonly SshKeyType[];
  /** More sshd_config lines, e.g. `AllowStreamLocalForwarding yes`. */
  readonly config?: readonly string[];
}

export async function freeLoopbackPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

/** Generates an unencrypted key pair at `path` and `path`.pub. */
export async function generateSshKey(path: string, type: SshKeyType = "ed25519"): Promise<string> {
  await execFileAsync("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", `kiln-test-${type}`, "-f", path]);
  return path;
}

/** An sshd on a free 127.0.0.1 port that lets in the generated client keys (as the current user). */
export class TestSshd {
  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly port: number,
    /** The known_hosts line for this server's host key. */
    readonly knownHostsLine: string,
    /** Private keys sshd accepts, by type. */
    readonly clientKeys: Readonly<Partial<Record<SshKeyType, string>>>,
    /** The first of the client keys. */
    readonly clientKey: string,
    readonly user: string,
  ) {}

  static async start(opts: SshdOptions = {}): Promise<TestSshd> {
    const dir = await mkdtemp(join(tmpdir(), "kiln-sshd-"));
    const hostKey = await generateSshKey(join(dir, "host_ed25519"));
    const clientKeys: Partial<Record<SshKeyType, string>> = {};
    const authorized: string[] = [];
    for (const type of opts.clientKeyTypes ?? ["ed25519"]) {
      clientKeys[type] = await generateSshKey(join(dir, `client_${type}`), type);
      authorized.push(await readFile(`${clientKeys[type]}.pub`, "utf8"));
    }
    await writeFile(join(dir, "authorized_keys"), authorized.join(""), { mode: 0o600 });
    const port = await freeLoopbackPort();
    const config = [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      "PermitRootLogin prohibit-password",
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "LogLevel ERROR",
      ...(opts.config ?? []),
    ].join("\n");
    await writeFile(join(dir, "sshd_config"), `${config}\n`);
    // sshd refuses to start without its privilege-separation directory.
    await mkdir("/run/sshd", { recursive: true, mode: 0o755 });
    const child = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", join(dir, "sshd_config")], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr?.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const hostPub = (await readFile(`${hostKey}.pub`, "utf8")).trim().split(" ").slice(0, 2).join(" ");
    const user = (await execFileAsync("id", ["-un"])).stdout.trim();
    const first = Object.values(clientKeys)[0];
    if (!first) throw new Error("TestSshd needs at least one client key type");
    const server = new TestSshd(child, dir, port, `[127.0.0.1]:${port} ${hostPub}`, clientKeys, first, user);
    try {
      await waitFor("sshd to listen", async () => {
        if (child.exitCode !== null) throw new Error(`sshd exited: ${stderr}`);
        return new Promise<boolean>((resolve) => {
          const sock = connect(port, "127.0.0.1");
          sock.once("connect", () => {
            sock.destroy();
            resolve(true);
          });
          sock.once("error", () => resolve(false));
        });
      });
    } catch (e) {
      await server.stop();
      throw e;
    }
    return server;
  }

  /** The ssh:// URL of this server for the login user, with an absolute path on this host if given. */
  url(absPath = ""): string {
    return `ssh://${this.user}@127.0.0.1:${this.port}${absPath}`;
  }

  async stop(): Promise<void> {
    await stopChild(this.child);
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** A real ssh-agent on a private socket, holding the given keys. */
export class SshAgent {
  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly socket: string,
  ) {}

  static async start(keys: readonly string[]): Promise<SshAgent> {
    const dir = await mkdtemp(join(tmpdir(), "kiln-agent-"));
    const socket = join(dir, "agent.sock");
    const child = spawn("ssh-agent", ["-D", "-a", socket], { stdio: ["ignore", "ignore", "ignore"] });
    const agent = new SshAgent(child, dir, socket);
    try {
      await waitFor("ssh-agent socket", async () => !!(await stat(socket).catch(() => undefined)));
      for (const key of keys)
        await execFileAsync("ssh-add", ["-q", key], {
          env: { PATH: process.env.PATH, SSH_AUTH_SOCK: socket },
        });
    } catch (e) {
      await agent.stop();
      throw e;
    }
    return agent;
  }

  async stop(): Promise<void> {
    await stopChild(this.child);
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Lays out the host's ssh client under `dir` — the binary and every shared library `ldd` lists, at
 * their own paths — for a Dockerfile to COPY into a base image that has no ssh (busybox).
 */
export async function copyHostSshClient(dir: string): Promise<void> {
  const ssh = "/usr/bin/ssh";
  const { stdout } = await execFileAsync("ldd", [ssh]);
  // `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x…)` and `/lib64/ld-linux-x86-64.so.2 (0x…)`.
  const libs = [...stdout.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)].map((m) => m[1]!);
  for (const file of [ssh, ...libs]) {
    await mkdir(join(dir, dirname(file)), { recursive: true });
    await copyFile(file, join(dir, file)); // through symlinks: the image gets the real contents
  }
}

/** The ssh command line a build step runs to log in to `sshd` and run `remote` there (no prompts, any host key). */
export function sshLoginCommand(sshd: TestSshd, remote: string): string {
  return `ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p ${sshd.port} ${sshd.user}@127.0.0.1 ${remote}`;
}
