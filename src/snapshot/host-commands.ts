// Short host commands (mount, umount, touch) started by one small long-lived shell instead of by
// this process. Starting a program from Node forks the whole process: with the engine's hundred
// megabytes that takes milliseconds of the event loop per command, and a build step makes several.
// The shell forks in well under a millisecond and runs the commands concurrently; each answers
// with its exit status and the head of its stderr. A shell that dies fails the commands it had
// pending and is replaced at the next command; after a few deaths (or when none can be started)
// commands run with execFile, as before.
import { type ChildProcessByStdio, execFile, spawn } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

/** An error like execFile's: the command's exit status and what it wrote to stderr. */
export class HostCommandError extends Error {
  constructor(
    readonly command: readonly string[],
    readonly code: number,
    readonly stderr: string,
  ) {
    super(`Command failed: ${command.join(" ")}${stderr ? `\n${stderr}` : ""}`);
    this.name = "HostCommandError";
  }
}

// `r ID DIR ARGV...` runs ARGV in DIR, or where the shell is when DIR is empty (in a subshell: the
// loop's own directory never changes), and prints one line, "ID STATUS BASE64-STDERR", short
// enough to be written atomically among the lines of concurrent commands. `wait`, sent when nothing is pending, reaps finished commands.
// Requests are single lines: a newline inside an argument travels as $nl.
const SCRIPT = `
nl='
'
r() {
  id=$1; dir=$2; shift 2
  err=$( { { [ -z "$dir" ] || cd "$dir"; } && "$@"; } 2>&1 >/dev/null </dev/null )
  rc=$?
  if [ -n "$err" ]; then err=$(printf '%s' "$err" | head -c 2048 | base64 | tr -d '\\n'); fi
  printf '%s %s %s\\n' "$id" "$rc" "$err"
}
while IFS= read -r line; do eval "$line"; done
`;

/** `arg` as one single-line word of shell: single-quoted, newlines spliced in from $nl. */
function quote(arg: string): string {
  if (arg.includes("\0")) throw new Error("a command argument contains a NUL byte");
  return `'${arg.replace(/'/g, `'\\''`).replace(/\n/g, `'"$nl"'`)}'`;
}

type Shell = ChildProcessByStdio<Writable, Readable, null>;

/** Pipes are sockets, which can stop (and start again) keeping the event loop alive. */
function handle(stream: Readable | Writable): { ref(): void; unref(): void } {
  return stream as unknown as { ref(): void; unref(): void };
}

interface Pending {
  readonly command: readonly string[];
  readonly cwd?: string;
  resolve(): void;
  reject(err: Error): void;
}

/** Deaths of the shell after which commands run with execFile. */
const MAX_SHELL_DEATHS = 3;

class HostCommandShell {
  private shell?: Shell;
  private deaths = 0;
  private nextId = 0;
  private buffered = "";
  private readonly pending = new Map<string, Pending>();

  /** Runs `file args` in `cwd`; resolves when it exits with status 0. */
  async run(file: string, args: readonly string[], cwd?: string): Promise<void> {
    const shell = this.deaths >= MAX_SHELL_DEATHS ? undefined : this.start();
    if (!shell) {
      await execFileP(file, [...args], { cwd });
      return;
    }
    const id = String(++this.nextId);
    const command = [file, ...args];
    const line = `r ${id} ${quote(cwd ?? "")} ${command.map(quote).join(" ")} &\n`;
    const done = new Promise<void>((resolve, reject) =>
      this.pending.set(id, { command, cwd, resolve, reject }),
    );
    if (this.pending.size === 1) handle(shell.stdout).ref();
    shell.stdin.write(line);
    return done;
  }

  private start(): Shell | undefined {
    if (this.shell) return this.shell;
    let shell: Shell;
    try {
      shell = spawn("/bin/sh", ["-c", SCRIPT], { stdio: ["pipe", "pipe", "ignore"] });
    } catch {
      this.deaths = MAX_SHELL_DEATHS;
      return undefined;
    }
    this.shell = shell;
    // An idle shell must not keep the process alive; it ends when its stdin closes with us.
    shell.unref();
    shell.stdin.on("error", () => {});
    handle(shell.stdin).unref();
    handle(shell.stdout).unref();
    shell.stdout.setEncoding("utf8");
    shell.stdout.on("data", (chunk: string) => this.receive(chunk));
    const fail = (why: string) => {
      if (this.shell !== shell) return;
      this.shell = undefined;
      this.buffered = "";
      this.deaths++;
      // Whether a pending command ran is unknown: its caller decides what to undo.
      const err = new Error(`the host command shell ${why}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    // A shell that could not be started ran nothing: its commands run with execFile instead.
    shell.once("error", () => {
      if (this.shell !== shell) return;
      this.shell = undefined;
      this.deaths = MAX_SHELL_DEATHS;
      const retry = [...this.pending.values()];
      this.pending.clear();
      for (const p of retry) {
        execFileP(p.command[0]!, p.command.slice(1), { cwd: p.cwd }).then(() => p.resolve(), p.reject);
      }
    });
    shell.once("exit", (code, signal) => fail(`exited (${signal ?? code})`));
    shell.stdout.once("close", () => fail("closed its output"));
    return shell;
  }

  private receive(chunk: string): void {
    this.buffered += chunk;
    for (let nl = this.buffered.indexOf("\n"); nl >= 0; nl = this.buffered.indexOf("\n")) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      const [id, status, err] = line.split(" ");
      const p = id === undefined ? undefined : this.pending.get(id);
      if (!p) continue;
      this.pending.delete(id!);
      const code = Number(status);
      if (code === 0) p.resolve();
      else p.reject(new HostCommandError(p.command, code, Buffer.from(err ?? "", "base64").toString("utf8")));
    }
    if (this.pending.size === 0 && this.shell) {
      handle(this.shell.stdout).unref();
      this.shell.stdin.write("wait\n");
    }
  }
}

const shell = new HostCommandShell();

/**
 * Runs a short host command (mount, umount, touch) with its output discarded; rejects with its
 * exit status and stderr (`code`, `stderr`, as execFile's errors have them) when it fails.
 */
export function runHostCommand(
  file: string,
  args: readonly string[],
  opts: { cwd?: string } = {},
): Promise<void> {
  return shell.run(file, args, opts.cwd);
}
