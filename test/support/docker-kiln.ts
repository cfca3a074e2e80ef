// `docker kiln` as a user runs it in an e2e test: the 28.x Docker CLI with Kiln installed as its
// plugin into a Docker config of the test's own (so no builder of the machine's is selected), the
// built bundle behind it, and Kiln's state in a directory of the test's own.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, type SpawnSyncReturns, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./world.js";

/** The Docker CLI users run (28.x, no buildx). */
export const DOCKER_CLI = "/usr/local/bin/docker";
/** Debian's 20.10 client, for checks against dockerd. */
export const DOCKER = "/usr/bin/docker";

export interface DockerKiln {
  /** The environment `docker kiln` runs with (DOCKER_CONFIG and KILN_STATE under the test's dir). */
  readonly env: NodeJS.ProcessEnv;
  /** `docker kiln ARGS`, whatever its exit status. */
  run(args: readonly string[]): SpawnSyncReturns<string>;
  /** `docker kiln ARGS`; fails the test with the command's output unless it exits 0. */
  ok(args: readonly string[]): SpawnSyncReturns<string>;
}

/** Installs the plugin into `dir`/docker-config (building dist/ first if it is missing). */
export function installDockerKiln(dir: string): DockerKiln {
  if (!existsSync(join(REPO_ROOT, "dist", "kiln.js")) || !existsSync(join(REPO_ROOT, "dist", "kilnd.js")))
    execFileSync("npm", ["run", "build"], { cwd: REPO_ROOT, stdio: "pipe" });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DOCKER_CONFIG: join(dir, "docker-config"),
    KILN_STATE: join(dir, "state"),
  };
  for (const k of ["KILN_BUILDER", "BUILDX_BUILDER", "DOCKER_CLI_PLUGIN_EXTRA_DIRS", "DOCKER_CONTEXT"])
    delete env[k];
  execFileSync(join(REPO_ROOT, "bin", "kiln"), ["install-plugin"], { env, stdio: "pipe" });
  const run = (args: readonly string[]) =>
    spawnSync(DOCKER_CLI, ["kiln", ...args], { env, encoding: "utf8", maxBuffer: 64 << 20 });
  return {
    env,
    run,
    ok(args) {
      const r = run(args);
      if (r.status !== 0)
        assert.fail(`docker kiln ${args.join(" ")} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
      return r;
    },
  };
}

/** A kilnd of the built bundle (dist/kilnd.js), as a remote node's engine. */
export interface KilndProcess {
  /** Its unix socket, for `create --driver remote unix://…`. */
  readonly socket: string;
  /**
   * What it wrote to stdout and stderr, once that matches `until` (up to 10 s): its output reaches
   * this process only while the event loop runs, not during a spawnSync.
   */
  log(until: RegExp): Promise<string>;
  /** SIGTERM, then SIGKILL after 20 s. */
  stop(): Promise<void>;
}

/** Starts kilnd on a unix socket under `dir`, its state in `dir`/root; resolves once it listens. */
export async function startKilnd(dir: string): Promise<KilndProcess> {
  const socket = join(dir, "kilnd.sock");
  const child: ChildProcess = spawn(
    process.execPath,
    [join(REPO_ROOT, "dist", "kilnd.js"), "--root", join(dir, "root"), "--addr", `unix://${socket}`],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (log += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (log += d));
  const started = Date.now();
  while (!log.includes(`listening on unix://${socket}`)) {
    if (child.exitCode !== null) assert.fail(`kilnd exited ${child.exitCode}:\n${log}`);
    if (Date.now() - started > 30_000) assert.fail(`kilnd did not start listening:\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    socket,
    async log(until) {
      for (const started = Date.now(); !until.test(log) && Date.now() - started < 10_000; )
        await new Promise((r) => setTimeout(r, 50));
      return log;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
    },
  };
}
