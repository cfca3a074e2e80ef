// The engine's fault behaviour with real processes: a kilnd (the bundle, dist/kilnd.js) killed
// with SIGKILL in the middle of a RUN and restarted on the same root, and builds cancelled during
// a RUN, through kilnd and in-process. Afterwards nothing of the interrupted step may be left: no
// container in the engine's runc state, no mount under the engine's root, no active snapshot;
// what had completed before is still in the cache, and the next build works.
import assert from "node:assert/strict";
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type BuildRequest, newBuildRequest } from "../../src/client/build-request.js";
import { RemoteBuildError } from "../../src/client/remote-build-error.js";
import { connectEngine } from "../../src/client/remote-engine.js";
import { Engine } from "../../src/engine/engine.js";
import type { BuildEngine } from "../../src/engine/types.js";
import { LocalSession } from "../../src/session/local-session.js";
import type { ProgressEvent, VertexEvent } from "../../src/solver/progress.js";
import { loadWorld, REPO_ROOT } from "../support/world.js";

const execFileP = promisify(execFile);
const world = loadWorld();
const KILND = join(REPO_ROOT, "dist", "kilnd.js");

/** The newest modification time of any file under `dir`. */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** Builds dist/ when it is missing or older than the sources, so the daemon under test is this tree's. */
function ensureBundle(): void {
  if (existsSync(KILND) && statSync(KILND).mtimeMs >= newestMtime(join(REPO_ROOT, "src"))) return;
  execFileSync("npm", ["run", "build"], { cwd: REPO_ROOT, stdio: "pipe" });
}

/** A kilnd process on `root`, listening on `socket`. */
class Kilnd {
  private child?: ChildProcess;
  stderr = "";

  constructor(
    readonly root: string,
    readonly socket: string,
  ) {}

  async start(): Promise<void> {
    this.stderr = "";
    const child = spawn(process.execPath, [KILND, "--root", this.root, "--addr", `unix://${this.socket}`], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    this.child = child;
    child.stderr!.on("data", (d: Buffer) => {
      this.stderr += d.toString();
    });
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`kilnd exited with ${child.exitCode}: ${this.stderr}`);
        return this.stderr.includes("listening on");
      },
      30_000,
      () => `kilnd to listen (stderr: ${this.stderr})`,
    );
  }

  /** Sends `signal` and waits for the process to be gone. */
  async stop(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    await gone;
  }
}

async function waitFor(
  condition: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Containers in the engine's runc state (RuncExecutor keeps it in <root>/exec/runc). */
async function runcContainers(root: string): Promise<string[]> {
  const { stdout } = await execFileP("runc", ["--root", join(root, "exec", "runc"), "list", "-q"]);
  return stdout.split("\n").filter((l) => l.trim() !== "");
}

/** Mount points at or under `root`, from /proc/mounts. */
async function mountsUnder(root: string): Promise<string[]> {
  const text = await readFile("/proc/mounts", "utf8");
  return text
    .split("\n")
    .map((l) => l.split(" ")[1])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))))
    .filter((p) => p === root || p.startsWith(`${root}/`));
}

/** Snapshot directories, of any snapshotter, that are not committed (active, or without a record). */
async function uncommittedSnapshots(root: string): Promise<string[]> {
  const out: string[] = [];
  const kinds = await readdir(join(root, "snapshots")).catch(() => [] as string[]);
  for (const kind of kinds) {
    for (const name of await readdir(join(root, "snapshots", kind))) {
      if (!/^[0-9a-f]{12}$/.test(name)) continue;
      const rec = await readFile(join(root, "snapshots", kind, name, "snapshot.json"), "utf8").then(
        (t) => JSON.parse(t) as { kind?: string },
        () => undefined,
      );
      if (rec?.kind !== "committed") out.push(`${kind}/${name} (${rec?.kind ?? "no record"})`);
    }
  }
  return out;
}

/** Leftovers of interrupted steps: containers, mounts and uncommitted snapshots. */
async function leftovers(
  root: string,
): Promise<{ containers: string[]; mounts: string[]; snapshots: string[] }> {
  return {
    containers: await runcContainers(root),
    mounts: await mountsUnder(root),
    snapshots: await uncommittedSnapshots(root),
  };
}

const NOTHING_LEFT = { containers: [], mounts: [], snapshots: [] };

function vertexStates(events: readonly ProgressEvent[]): Map<string, VertexEvent> {
  const states = new Map<string, VertexEvent>();
  for (const e of events) if (e.type === "vertex") states.set(e.vertex, e);
  return states;
}

/** Names of the vertices that ran (completed without being cached and without an error). */
function executed(events: readonly ProgressEvent[]): string[] {
  return [...vertexStates(events).values()]
    .filter((v) => v.completed !== undefined && !v.cached && !v.error)
    .map((v) => v.name);
}

function cachedNames(events: readonly ProgressEvent[]): string[] {
  return [...vertexStates(events).values()].filter((v) => v.cached).map((v) => v.name);
}

/** Whether a vertex whose name contains `text` has started and not completed. */
function running(events: readonly ProgressEvent[], text: string): boolean {
  return [...vertexStates(events).values()].some(
    (v) => v.name.includes(text) && v.started !== undefined && v.completed === undefined,
  );
}

function request(context: string, dockerfile: string, given: Partial<BuildRequest> = {}): BuildRequest {
  return newBuildRequest(context, { dockerfileText: dockerfile, dockerfileName: "Dockerfile", ...given });
}

/**
 * Starts a build of `FROM busybox; RUN sleep 30` (after `prefix` steps), waits until its container
 * runs, aborts it and returns how long the build took to reject after the abort.
 */
async function cancelDuringSleep(
  engine: BuildEngine,
  root: string,
  context: string,
  marker: string,
): Promise<{ rejectedAfterMs: number; error: unknown }> {
  const req = request(context, `FROM ${world.busybox}\nRUN echo ${marker} > /m\nRUN sleep 30\n`);
  const events: ProgressEvent[] = [];
  const abort = new AbortController();
  let rejectedAt = 0;
  let error: unknown;
  const build = engine
    .build(req, new LocalSession({ request: req }), {
      onProgress: (e) => events.push(e),
      signal: abort.signal,
    })
    .then(
      () => assert.fail("the cancelled build succeeded"),
      (err: unknown) => {
        rejectedAt = Date.now();
        error = err;
      },
    );
  await waitFor(
    async () => running(events, "sleep 30") && (await runcContainers(root)).length > 0,
    60_000,
    () => "the RUN sleep 30 container to run",
  );
  const abortedAt = Date.now();
  abort.abort();
  await build;
  return { rejectedAfterMs: rejectedAt - abortedAt, error };
}

/** The next build on the engine works: a RUN whose output comes back through a local export. */
async function buildWorks(engine: BuildEngine, context: string, out: string, marker: string): Promise<void> {
  const req = request(context, `FROM ${world.busybox}\nRUN echo ${marker} > /after\n`, {
    outputs: [{ type: "local", dest: out, attrs: {} }],
  });
  await engine.build(req, new LocalSession({ request: req }), {});
  assert.equal(await readFile(join(out, "after"), "utf8"), `${marker}\n`);
}

describe("engine faults (real kilnd, runc and mounts)", function () {
  this.timeout(180_000);
  let work: string;
  let context: string;

  before(async () => {
    ensureBundle();
    work = await mkdtemp(join(tmpdir(), "kiln-faults-"));
    context = join(work, "context");
    await mkdir(context);
  });

  after(async () => {
    if (!work) return;
    // A failed check may leave mounts behind; never delete through them.
    for (const mp of (await mountsUnder(work)).reverse())
      await execFileP("umount", ["-l", mp]).catch(() => {});
    await rm(work, { recursive: true, force: true });
  });

  it("recovers from SIGKILL during a RUN: restarts, keeps the completed steps cached, leaves nothing behind", async () => {
    const root = join(work, "kill-root");
    const daemon = new Kilnd(root, join(work, "kill.sock"));
    await daemon.start();
    const marker = `killed-${process.pid}-${Date.now()}`;
    const prefix = `FROM ${world.busybox}\nRUN echo ${marker} > /one\nRUN echo two > /two\n`;
    try {
      let engine = await connectEngine({ unix: daemon.socket });
      const events: ProgressEvent[] = [];
      const first = request(context, `${prefix}RUN sleep 30\n`);
      const lost = engine
        .build(first, new LocalSession({ request: first }), { onProgress: (e) => events.push(e) })
        .then(
          () => assert.fail("the build outlived its engine"),
          (err: unknown) => err,
        );
      await waitFor(
        async () => running(events, "sleep 30") && (await runcContainers(root)).length > 0,
        60_000,
        () => "the RUN sleep 30 container to run",
      );
      assert.deepEqual(
        executed(events)
          .filter((n) => n.includes("RUN"))
          .sort(),
        [`[2/4] RUN echo ${marker} > /one`, "[3/4] RUN echo two > /two"],
      );

      await daemon.stop("SIGKILL");
      const err = await lost;
      assert.ok(err instanceof RemoteBuildError, String(err));
      await engine.close();
      // The kill left what a running step has: a container, its root filesystem mount, an active snapshot.
      const left = await leftovers(root);
      assert.ok(left.containers.length > 0, "a container survived the kill");
      assert.ok(left.mounts.length > 0, "a mount survived the kill");
      assert.ok(left.snapshots.length > 0, "an active snapshot survived the kill");

      await daemon.start();
      assert.deepEqual(await leftovers(root), NOTHING_LEFT);

      engine = await connectEngine({ unix: daemon.socket });
      try {
        const again: ProgressEvent[] = [];
        const out = join(work, "kill-out");
        const second = request(context, `${prefix}RUN cat /one /two > /three\n`, {
          outputs: [{ type: "local", dest: out, attrs: {} }],
        });
        await engine.build(second, new LocalSession({ request: second }), {
          onProgress: (e) => again.push(e),
        });
        assert.deepEqual(
          executed(again).filter((n) => n.includes("RUN")),
          ["[4/4] RUN cat /one /two > /three"],
        );
        // The last completed step is a hit; the solver needs nothing below it.
        assert.deepEqual(
          cachedNames(again).filter((n) => n.includes("RUN")),
          ["[3/4] RUN echo two > /two"],
        );
        assert.equal(await readFile(join(out, "three"), "utf8"), `${marker}\ntwo\n`);
        assert.deepEqual(await leftovers(root), NOTHING_LEFT);
      } finally {
        await engine.close();
      }
    } finally {
      await daemon.stop("SIGKILL");
    }
  });

  it("cancels a build through kilnd during a RUN within 2 s, leaving no container, mount or snapshot", async () => {
    const root = join(work, "cancel-root");
    const daemon = new Kilnd(root, join(work, "cancel.sock"));
    await daemon.start();
    try {
      const engine = await connectEngine({ unix: daemon.socket });
      try {
        const { rejectedAfterMs, error } = await cancelDuringSleep(
          engine,
          root,
          context,
          `remote-${Date.now()}`,
        );
        assert.ok(
          error instanceof RemoteBuildError && error.kind === "cancelled",
          `expected a cancelled build, got ${String(error)}`,
        );
        assert.ok(rejectedAfterMs < 2000, `the build rejected ${rejectedAfterMs} ms after the abort`);
        assert.deepEqual(await leftovers(root), NOTHING_LEFT);
        await buildWorks(engine, context, join(work, "cancel-out"), `after-remote-${Date.now()}`);
        assert.deepEqual(await leftovers(root), NOTHING_LEFT);
      } finally {
        await engine.close();
      }
      await daemon.stop("SIGTERM");
    } finally {
      await daemon.stop("SIGKILL");
    }
  });

  it("cancels an in-process build during a RUN within 2 s, leaving no container, mount or snapshot", async () => {
    const root = join(work, "inproc-root");
    const engine = await Engine.open({ stateDir: root });
    try {
      const { rejectedAfterMs, error } = await cancelDuringSleep(
        engine,
        root,
        context,
        `inproc-${Date.now()}`,
      );
      assert.ok(
        error instanceof Error && (error.name === "AbortError" || /cancel/i.test(error.message)),
        `expected a cancellation, got ${String(error)}`,
      );
      assert.ok(rejectedAfterMs < 2000, `the build rejected ${rejectedAfterMs} ms after the abort`);
      assert.deepEqual(await leftovers(root), NOTHING_LEFT);
      await buildWorks(engine, context, join(work, "inproc-out"), `after-inproc-${Date.now()}`);
      assert.deepEqual(await leftovers(root), NOTHING_LEFT);
    } finally {
      await engine.close();
    }
  });
});
