// A real kilnd process (the real engine on a temporary root) reached through its unix socket and
// through `kilnd dial-stdio`, and its shutdown on SIGTERM.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Duplex } from "node:stream";
import { fileURLToPath } from "node:url";
import { newBuildRequest } from "../../src/client/build-request.js";
import { RemoteBuildError } from "../../src/client/remote-build-error.js";
import { connectEngine } from "../../src/client/remote-engine.js";
import { hostPlatform, samePlatform } from "../../src/oci/platform.js";
import { LocalSession } from "../../src/session/local-session.js";
import type { ProgressEvent } from "../../src/solver/progress.js";
import { KILN_VERSION } from "../../src/version.js";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Runs kilnd from the sources, as the bundle would run it. */
function kilnd(args: string[]): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", join(repo, "src/server/main.ts"), ...args], {
    cwd: repo,
    stdio: ["pipe", "pipe", "pipe"],
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.once("exit", (code) => resolve(code));
  });
}

describe("kilnd", function () {
  this.timeout(60_000);
  let work: string;
  let socket: string;
  let daemon: ChildProcess;
  let stderr = "";

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "kilnd-"));
    socket = join(work, "run", "kilnd.sock");
    daemon = kilnd(["--root", join(work, "root"), "--addr", `unix://${socket}`]);
    daemon.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    for (let i = 0; i < 300 && !stderr.includes("listening on"); i++) {
      if (daemon.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(stderr.includes(`listening on unix://${socket}`), `kilnd did not start: ${stderr}`);
  });
  after(async () => {
    if (daemon.exitCode === null) {
      daemon.kill("SIGKILL");
      await exited(daemon);
    }
    await rm(work, { recursive: true, force: true });
  });

  it("answers Info on its unix socket with the real engine's version and the host's platform", async () => {
    assert.equal((await stat(socket)).mode & 0o777, 0o600);
    const engine = await connectEngine({ unix: socket });
    try {
      const info = await engine.info();
      assert.equal(info.version, KILN_VERSION);
      assert.ok(
        info.nativePlatforms.some((p) => samePlatform(p, hostPlatform())),
        JSON.stringify(info.nativePlatforms),
      );
      assert.ok(info.snapshotter.length > 0);
      assert.deepEqual(await engine.diskUsage(), []);
    } finally {
      await engine.close();
    }
  });

  it("builds a Dockerfile whose context and local output cross the socket", async () => {
    const context = join(work, "ctx");
    await mkdir(join(context, "sub"), { recursive: true });
    await writeFile(join(context, "sub", "hello.txt"), "hello from the client\n");
    await writeFile(join(context, "skip.log"), "ignored");
    const out = join(work, "out");
    const request = newBuildRequest(context, {
      dockerfileText: "FROM scratch\nCOPY sub/ /copied/\n",
      dockerfileName: "Dockerfile",
      dockerignore: ["*.log"],
      outputs: [{ type: "local", dest: out, attrs: {} }],
    });
    const engine = await connectEngine({ unix: socket });
    try {
      const events: ProgressEvent[] = [];
      await engine.build(request, new LocalSession({ request }), { onProgress: (e) => events.push(e) });
      assert.equal(await readFile(join(out, "copied", "hello.txt"), "utf8"), "hello from the client\n");
      assert.ok(
        events.some((e) => e.type === "vertex" && e.completed !== undefined),
        "progress arrived",
      );
      await assert.rejects(
        engine.build(
          { ...request, dockerfileText: "FROM scratch\nCOPY missing.txt /\n" },
          new LocalSession({ request }),
          {},
        ),
        (err: unknown) =>
          err instanceof RemoteBuildError && err.kind === "build-failed" && /missing\.txt/.test(err.message),
      );
    } finally {
      await engine.close();
    }
  });

  it("is reachable through `kilnd dial-stdio` joined to a client's byte stream", async () => {
    const dialers: ChildProcess[] = [];
    const engine = await connectEngine({
      duplex: () => {
        const dialer = kilnd(["dial-stdio", "--addr", `unix://${socket}`]);
        dialers.push(dialer);
        return Duplex.from({ readable: dialer.stdout!, writable: dialer.stdin! });
      },
    });
    try {
      assert.equal((await engine.info()).version, KILN_VERSION);
      const [worker] = await engine.listWorkers();
      assert.ok(worker && worker.platforms.length > 0);
    } finally {
      await engine.close();
    }
    const codes = await Promise.all(dialers.map(exited));
    assert.ok(dialers.length >= 1);
    assert.deepEqual(
      codes,
      dialers.map(() => 0),
      "dial-stdio exits cleanly when the client hangs up",
    );
  });

  it("fails `dial-stdio` with a hint when no daemon listens at the address", async () => {
    const dialer = kilnd(["dial-stdio", "--addr", `unix://${join(work, "nothing.sock")}`]);
    let err = "";
    dialer.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
    });
    assert.equal(await exited(dialer), 1);
    assert.match(err, /cannot reach kilnd at unix:\/\/.*nothing\.sock: .*\(is kilnd running\?\)/);
  });

  it("removes its socket and exits 0 on SIGTERM", async () => {
    daemon.kill("SIGTERM");
    assert.equal(await exited(daemon), 0);
    assert.equal(existsSync(socket), false);
    assert.match(stderr, /SIGTERM: cancelling builds and shutting down/);
  });
});
