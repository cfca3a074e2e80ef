// The shell that runs the engine's mount, umount and touch commands (src/snapshot/host-commands.ts),
// under faults: failing commands report status and stderr, awkward arguments arrive intact, a
// killed shell fails what it had pending and is replaced, and an idle shell never keeps a process
// from exiting while a pending command always does.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { HostCommandError, runHostCommand } from "../../src/snapshot/host-commands.js";
import { REPO_ROOT } from "../support/world.js";

const execFileP = promisify(execFile);

/** Pids of this process's children that are the host command shell. */
function commandShells(): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== process.pid) continue;
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
      if (cmdline[0] === "/bin/sh" && cmdline[1] === "-c" && cmdline[2]?.includes("r() {"))
        out.push(Number(name));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

describe("engine faults: the host command shell", function () {
  this.timeout(60_000);
  let work: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "kiln-hostcmd-"));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("passes arguments with quotes, spaces and newlines intact and runs in the given directory", async () => {
    const out = join(work, "args");
    const awkward = ["it's", "a b", "line1\nline2", "$HOME", "`x`", "\\", "*", ""];
    await runHostCommand(
      "sh",
      ["-c", 'cd "$1" && shift && printf "%s|" "$(pwd)" "$@" > args', "sh", work, ...awkward],
      { cwd: "/" },
    );
    assert.equal(await readFile(out, "utf8"), `${work}|${awkward.join("|")}|`);
    await runHostCommand("sh", ["-c", 'test "$(pwd)" = "$1"', "sh", work], { cwd: work });
  });

  it("rejects a failing command with its status and stderr", async () => {
    await assert.rejects(
      runHostCommand("sh", ["-c", "echo 'first line' >&2; echo second >&2; exit 7"]),
      (err: unknown) =>
        err instanceof HostCommandError && err.code === 7 && err.stderr === "first line\nsecond",
    );
    await assert.rejects(
      runHostCommand("kiln-no-such-command", []),
      (err: unknown) => err instanceof HostCommandError && err.code === 127,
    );
    await assert.rejects(
      runHostCommand("true", [], { cwd: join(work, "missing") }),
      (err: unknown) => err instanceof HostCommandError && err.code !== 0 && /missing/.test(err.stderr),
    );
  });

  it("runs commands concurrently", async () => {
    const started = Date.now();
    await Promise.all(Array.from({ length: 8 }, () => runHostCommand("sleep", ["0.5"])));
    const took = Date.now() - started;
    assert.ok(took < 2000, `8 × sleep 0.5 took ${took} ms`);
  });

  it("fails the commands a killed shell had pending, and replaces the shell", async () => {
    await runHostCommand("true", []);
    const [shell] = commandShells();
    assert.ok(shell, "the shell runs as a child of this process");
    const pending = runHostCommand("sleep", ["5"]);
    const started = Date.now();
    process.kill(shell, "SIGKILL");
    await assert.rejects(pending, /host command shell/);
    assert.ok(Date.now() - started < 2000);
    await runHostCommand("true", []);
    const after = commandShells();
    assert.ok(after.length === 1 && after[0] !== shell, `a new shell: ${after.join(", ")}`);
  });

  it("keeps a process alive while a command is pending, and lets it exit when idle", async () => {
    const script = join(work, "lifetime.mts");
    const module = join(REPO_ROOT, "src", "snapshot", "host-commands.ts");
    await writeFile(
      script,
      `import { runHostCommand } from ${JSON.stringify(module)};\n` +
        `await runHostCommand("true", []);\n` +
        // Nothing but the pending command keeps the process alive here.
        `void runHostCommand("sh", ["-c", "sleep 0.3; echo done > ${join(work, "done")}"]).then(() => console.log("answered"));\n`,
    );
    // An idle shell that held the process would make it outlive the timeout (and be killed).
    const { stdout } = await execFileP(process.execPath, ["--import", "tsx", script], {
      cwd: REPO_ROOT,
      timeout: 20_000,
    });
    assert.equal(stdout.trim(), "answered");
    assert.equal(await readFile(join(work, "done"), "utf8"), "done\n");
  });
});
