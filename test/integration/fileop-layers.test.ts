// Layers a FileOp makes: one per Dockerfile instruction, however many actions it has (a COPY of
// several sources is one action per source), as BuildKit's images have them.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newBuildRequest } from "../../src/client/build-request.js";
import { type Engine, openEngine } from "../../src/engine/engine.js";
import type { ImageConfig, ImageIndex, ImageManifest } from "../../src/oci/spec.js";
import { LocalSession } from "../../src/session/local-session.js";
import { loadWorld } from "../support/world.js";

const world = loadWorld();

describe("layers of FileOps with several actions (real engine)", function () {
  this.timeout(120_000);
  let state: string;
  let ctx: string;
  let engine: Engine;

  before(async () => {
    state = await mkdtemp(join(tmpdir(), "kiln-fileop-layers-state-"));
    ctx = await mkdtemp(join(tmpdir(), "kiln-fileop-layers-ctx-"));
    engine = await openEngine({ stateDir: state });
  });
  after(async () => {
    await engine.close();
    await rm(state, { recursive: true, force: true });
    await rm(ctx, { recursive: true, force: true });
  });

  /** The image built from `dockerfile`: its manifest and config, read from an OCI layout. */
  async function image(dockerfile: string): Promise<{ manifest: ImageManifest; config: ImageConfig }> {
    await writeFile(join(ctx, "Dockerfile"), dockerfile);
    const layout = join(ctx, `layout-${Date.now()}`);
    const req = newBuildRequest(ctx, {
      dockerfileText: dockerfile,
      outputs: [{ type: "oci", dest: `${layout}.tar`, tar: true, names: [], attrs: {} }],
    });
    await engine.build(req, new LocalSession({ request: req }), {});
    await mkdir(layout);
    execFileSync("tar", ["-xf", `${layout}.tar`, "-C", layout]);
    const blob = async (digest: string) =>
      JSON.parse(await readFile(join(layout, "blobs", "sha256", digest.slice("sha256:".length)), "utf8"));
    const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as ImageIndex;
    const manifest = (await blob(index.manifests[0]!.digest)) as ImageManifest;
    return { manifest, config: (await blob(manifest.config.digest)) as ImageConfig };
  }

  it("makes one layer for a COPY of several sources, paired with its history entry", async () => {
    await writeFile(join(ctx, "a.txt"), "a\n");
    await writeFile(join(ctx, "b.txt"), "b\n");
    const { manifest, config } = await image(
      `FROM ${world.busybox}\nCOPY a.txt b.txt /dst/\nRUN cat /dst/a.txt /dst/b.txt > /both\n`,
    );
    assert.equal(manifest.layers.length, 3, "base, the COPY, the RUN");
    const withLayers = (config.history ?? []).filter((h) => !h.empty_layer);
    assert.equal(withLayers.length, 3);
    assert.match(withLayers[1]!.created_by ?? "", /^COPY a\.txt b\.txt \/dst\//);
    assert.match(withLayers[2]!.created_by ?? "", /^RUN /);
    assert.ok(!(config.history ?? []).some((h) => h.comment === "layer without history"));
  });
});
