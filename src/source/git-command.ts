// Runs the git CLI for git sources the way BuildKit runs it: isolated from the host's git and ssh
// configuration (no system or global config, no prompts, `ssh -F /dev/null`), told exactly which
// agent socket and known hosts to use, with failures carrying git's stderr (credentials redacted).
import { spawn } from "node:child_process";
import { devNull } from "node:os";

export interface GitRunOptions {
  readonly gitDir?: string;
  readonly workTree?: string;
  readonly cwd?: string;
  /** The SSH agent ssh may use; without it ssh sees no agent at all. */
  readonly sshAuthSock?: string;
  /** A known_hosts file: host keys are then checked strictly against it. */
  readonly knownHostsFile?: string;
  /**
   * Config passed through the environment (GIT_CONFIG_COUNT/KEY/VALUE) rather than `-c`, so
   * values such as auth headers never appear in the process list.
   */
  readonly config?: readonly (readonly [string, string])[];
  /** Further environment (e.g. GIT_INDEX_FILE). */
  readonly env?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
}

export class GitCommandError extends Error {
  override name = "GitCommandError";
  constructor(
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(
      `git ${redactCredentials(args.join(" "))} failed (exit ${exitCode}): ${redactCredentials(stderr.trim())}`,
    );
  }
}

/** Hides passwords and tokens written into URLs (`https://user:secret@host`). */
export function redactCredentials(s: string): string {
  return s.replace(/([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)([^/@\s:]+):[^/@\s]+@/g, "$1$2:xxxxx@");
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * The ssh command git runs: no user ssh config, never a prompt; strict host keys against the given
 * known_hosts, else (as BuildKit) no checking — and then nothing written to the host's known_hosts.
 */
export function gitSshCommand(knownHostsFile?: string): string {
  let cmd = `ssh -F ${devNull} -o BatchMode=yes`;
  if (knownHostsFile)
    cmd += ` -o UserKnownHostsFile=${shellQuote(knownHostsFile)} -o StrictHostKeyChecking=yes`;
  else cmd += ` -o StrictHostKeyChecking=no -o UserKnownHostsFile=${devNull}`;
  return cmd;
}

const PROXY_VARS = [
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "ALL_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
  "all_proxy",
];

function gitEnv(opts: GitRunOptions): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    GIT_TERMINAL_PROMPT: "0",
    GIT_SSH_COMMAND: gitSshCommand(opts.knownHostsFile),
    LC_ALL: "C",
    GIT_CONFIG_NOSYSTEM: "1",
    HOME: devNull,
    GIT_CONFIG_GLOBAL: devNull,
  };
  for (const v of PROXY_VARS) if (process.env[v] !== undefined) env[v] = process.env[v]!;
  if (opts.sshAuthSock) env.SSH_AUTH_SOCK = opts.sshAuthSock;
  const config = opts.config ?? [];
  if (config.length > 0) {
    env.GIT_CONFIG_COUNT = String(config.length);
    config.forEach(([k, v], i) => {
      env[`GIT_CONFIG_KEY_${i}`] = k;
      env[`GIT_CONFIG_VALUE_${i}`] = v;
    });
  }
  return { ...env, ...opts.env };
}

/** Runs `git args…`, resolving with stdout; rejects with a GitCommandError carrying stderr. */
export function runGit(args: readonly string[], opts: GitRunOptions = {}): Promise<string> {
  // Repositories must not pull files from this host in as submodules (BuildKit's guard).
  const full = ["-c", "protocol.file.allow=user"];
  if (opts.workTree) full.push("--work-tree", opts.workTree);
  if (opts.gitDir) full.push("--git-dir", opts.gitDir);
  full.push(...args);
  return new Promise((resolve, reject) => {
    const child = spawn("git", full, {
      cwd: opts.cwd ?? opts.workTree ?? opts.gitDir,
      env: gitEnv(opts),
      stdio: ["ignore", "pipe", "pipe"],
      signal: opts.signal,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", (e) => reject(e));
    child.on("close", (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString("utf8"));
      else reject(new GitCommandError(args, code, Buffer.concat(err).toString("utf8")));
    });
  });
}
