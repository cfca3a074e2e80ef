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
import { loadWorld } from "../support/world.js";

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

describe("kilnd --config (buildkitd.toml keys)", function () {
  this.timeout(120_000);
  const world = loadWorld();
  let work: string;
  let socket: string;
  let daemon: ChildProcess;
  let stderr = "";

  const CONFIG = `
debug = true
insecure-entitlements = ["network.host"]

[registry."mirror-test.invalid"]
  mirrors = ["${world.registry}"]

[worker.oci]
  gc = false
  [[worker.oci.gcpolicy]]
    keepBytes = "512MB"
    keepDuration = "48h"
    filters = ["type==source.local"]
  [[worker.oci.gcpolicy]]
    all = true
    keepBytes = "1GB"
`;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "kilnd-config-"));
    socket = join(work, "kilnd.sock");
    await writeFile(join(work, "kilnd.toml"), CONFIG);
    daemon = kilnd([
      "--root",
      join(work, "root"),
      "--addr",
      `unix://${socket}`,
      "--config",
      join(work, "kilnd.toml"),
    ]);
    daemon.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    for (let i = 0; i < 300 && !stderr.includes("listening on"); i++) {
      if (daemon.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(stderr.includes("listening on"), `kilnd did not start: ${stderr}`);
  });
  after(async () => {
    if (daemon.exitCode === null) {
      daemon.kill("SIGTERM");
      await exited(daemon);
    }
    await rm(work, { recursive: true, force: true });
  });

  it("reports the configured garbage-collection rules in Info", async () => {
    const engine = await connectEngine({ unix: socket });
    try {
      assert.deepEqual((await engine.info()).gcPolicy, [
        { filters: ["type==source.local"], keepDurationMs: 48 * 3600_000, keepBytes: 512 * 1024 ** 2 },
        { all: true, keepBytes: 1024 ** 3 },
      ]);
    } finally {
      await engine.close();
    }
  });

  it("names the keys it does not use", () => {
    assert.match(stderr, /not used by kilnd: debug/);
  });

  it("pulls through a configured mirror and allows the configured entitlement", async () => {
    const context = join(work, "ctx");
    await mkdir(context, { recursive: true });
    const out = join(work, "out");
    // mirror-test.invalid does not exist: the base image can only come from its mirror.
    const request = newBuildRequest(context, {
      dockerfileText: "FROM mirror-test.invalid/busybox\nRUN --network=host echo via-mirror > /done\n",
      dockerfileName: "Dockerfile",
      allow: ["network.host"],
      outputs: [{ type: "local", dest: out, attrs: {} }],
    });
    const engine = await connectEngine({ unix: socket });
    try {
      await engine.build(request, new LocalSession({ request }), {});
      assert.equal(await readFile(join(out, "done"), "utf8"), "via-mirror\n");
    } finally {
      await engine.close();
    }
  });

  it("refuses to start on a config it cannot use, naming the file and the key", async () => {
    const bad = join(work, "bad.toml");
    await writeFile(bad, 'insecure-entitlements = ["device"]\n');
    const child = kilnd([
      "--root",
      join(work, "root2"),
      "--addr",
      `unix://${join(work, "k2.sock")}`,
      "--config",
      bad,
    ]);
    let err = "";
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
    });
    assert.equal(await exited(child), 2);
    assert.match(
      err,
      new RegExp(
        `${bad.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: insecure-entitlements: unknown entitlement "device"`,
      ),
    );
  });
});
