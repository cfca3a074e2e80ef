// Image digests of rebuilds without SOURCE_DATE_EPOCH: history and image times come from when each
// step ran, so a rebuild whose steps all come from the cache writes the same image, as BuildKit's.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newBuildRequest } from "../../src/client/build-request.js";
import { type Engine, openEngine } from "../../src/engine/engine.js";
import { LocalSession } from "../../src/session/local-session.js";
import { loadWorld } from "../support/world.js";

const world = loadWorld();

describe("image digests of rebuilds (real engine, no SOURCE_DATE_EPOCH)", function () {
  this.timeout(120_000);
  let state: string;
  let ctx: string;
  let engine: Engine;

  before(async () => {
    state = await mkdtemp(join(tmpdir(), "kiln-rebuild-state-"));
    ctx = await mkdtemp(join(tmpdir(), "kiln-rebuild-ctx-"));
    engine = await openEngine({ stateDir: state });
  });
  after(async () => {
    await engine.close();
    await rm(state, { recursive: true, force: true });
    await rm(ctx, { recursive: true, force: true });
  });

  /** The image digest and config of a build of `dockerfile`, written to an OCI archive. */
  async function build(dockerfile: string): Promise<string> {
    await writeFile(join(ctx, "Dockerfile"), dockerfile);
    const req = newBuildRequest(ctx, {
      dockerfileText: dockerfile,
      outputs: [{ type: "oci", dest: join(ctx, `out-${Date.now()}.tar`), tar: true, names: [], attrs: {} }],
    });
    const outcome = await engine.build(req, new LocalSession({ request: req }), {});
    return String(outcome.metadata["containerimage.digest"]);
  }

  it("gives the same digest when every step of a rebuild comes from the cache", async () => {
    const dockerfile = `FROM ${world.busybox}\nENV A=1\nRUN echo one > /one\nLABEL x=y\nRUN echo two > /two\n`;
    const first = await build(dockerfile);
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal(await build(dockerfile), first);
  });

  it("gives a new digest when a step runs again", async () => {
    const first = await build(`FROM ${world.busybox}\nRUN echo ${Date.now()} > /stamp\n`);
    const second = await build(`FROM ${world.busybox}\nRUN echo ${Date.now() + 1} > /stamp\n`);
    assert.notEqual(second, first);
  });
});
