import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { newBuildRequest } from "../../src/client/build-request.js";
import { type Engine, openEngine } from "../../src/engine/engine.js";
import { LocalSession } from "../../src/session/local-session.js";
import { loadWorld } from "../support/world.js";

const world = loadWorld();
const run = promisify(execFile);

/** Files on the state directory's own filesystem (not on tmpfs or snapshot mounts) that contain `value`. */
async function filesOnDiskContaining(dir: string, value: string): Promise<string[]> {
  const { stdout } = await run("sh", [
    "-c",
    `find "$1" -xdev -type f -exec grep -l -F -e "$2" {} + || true`,
    "sh",
    dir,
    value,
  ]);
  return stdout.split("\n").filter((l) => l !== "");
}

async function waitForRunningStep(bundles: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const names = await readdir(bundles).catch(() => [] as string[]);
    if (names.length > 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no step started under ${bundles}`);
}

describe("secrets given to a RUN step as env vars", function () {
  this.timeout(120_000);
  let state: string;
  let ctx: string;
  let engine: Engine;

  before(async () => {
    state = await mkdtemp(join(tmpdir(), "kiln-secret-disk-state-"));
    ctx = await mkdtemp(join(tmpdir(), "kiln-secret-disk-ctx-"));
    engine = await openEngine({ stateDir: state });
  });
  after(async () => {
    await engine.close();
    await rm(state, { recursive: true, force: true });
    await rm(ctx, { recursive: true, force: true });
  });

  it("never reach the engine's disk, even while the step runs", async () => {
    const value = `kiln-env-secret-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const dockerfile = `FROM ${world.busybox}\nRUN --mount=type=secret,id=tok,env=TOK sleep 3\n`;
    await writeFile(join(ctx, "Dockerfile"), dockerfile);
    const req = newBuildRequest(ctx, {
      dockerfileText: dockerfile,
      secrets: [{ id: "tok", source: { kind: "env", name: "KILN_TEST_ENV_SECRET" } }],
    });
    process.env.KILN_TEST_ENV_SECRET = value;
    try {
      const building = engine.build(req, new LocalSession({ request: req }), {});
      await waitForRunningStep(join(state, "exec", "bundles"));
      const whileRunning = await filesOnDiskContaining(state, value);
      await building;
      assert.deepEqual(whileRunning, [], "the running step's secret is on the engine's disk");
      assert.deepEqual(await filesOnDiskContaining(state, value), []);
    } finally {
      delete process.env.KILN_TEST_ENV_SECRET;
    }
  });
});
