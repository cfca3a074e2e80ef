// Re-exporting an imported cache: builder B imports A's cache, hits it fully (so its solver never
// needs the steps below the final one) and exports a cache of its own; builder C imports B's export.
// B's export must carry the whole chain A exported, or C could no longer reuse any prefix of it.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BuildRequest, newBuildRequest } from "../../src/client/build-request.js";
import { type Engine, openEngine } from "../../src/engine/engine.js";
import { LocalSession } from "../../src/session/local-session.js";
import type { ProgressEvent, VertexEvent } from "../../src/solver/progress.js";
import { loadWorld } from "../support/world.js";

const world = loadWorld();
const EPOCH = { SOURCE_DATE_EPOCH: "1700000000" };
const CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0";

interface Built {
  readonly events: readonly ProgressEvent[];
  readonly metadata: Readonly<Record<string, unknown>>;
}

/** The steps that ran (not cache hits), by their Dockerfile instruction. */
function ranSteps(b: Built, pattern: RegExp): string[] {
  const byVertex = new Map<string, VertexEvent>();
  for (const e of b.events)
    if (e.type === "vertex") byVertex.set(e.vertex, { ...byVertex.get(e.vertex), ...e });
  return [...byVertex.values()]
    .filter((v) => pattern.test(v.name) && !v.cached && v.completed !== undefined)
    .map((v) => v.name.replace(/^\[.*?\]\s*/, ""));
}

/** A cache config without its creation times, which say when it was exported, not what it holds. */
function withoutCreatedAt(config: { records: { layers?: { createdAt?: string }[] }[] }): unknown {
  return {
    ...config,
    records: config.records.map((r) => ({
      ...r,
      layers: r.layers?.map(({ createdAt: _createdAt, ...rest }) => rest),
    })),
  };
}

/** The cache config a local cache directory's `latest` tag names. */
async function localCacheConfig(dir: string) {
  const blob = async (digest: string) =>
    JSON.parse(await readFile(join(dir, "blobs", "sha256", digest.slice("sha256:".length)), "utf8"));
  const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8"));
  const cacheIndex = await blob(index.manifests[0].digest);
  return blob(cacheIndex.manifests.find((m: { mediaType: string }) => m.mediaType === CACHE_CONFIG).digest);
}

/** The inline cache config in a pushed image's config. */
function inlineCacheConfig(ref: string) {
  const config = JSON.parse(
    execFileSync("skopeo", ["inspect", "--raw", "--config", "--tls-verify=false", `docker://${ref}`], {
      encoding: "utf8",
    }),
  );
  return JSON.parse(Buffer.from(config["moby.buildkit.cache.v0"], "base64").toString("utf8"));
}

describe("re-exporting an imported cache after a fully cached build (real engines A, B, C)", function () {
  this.timeout(300_000);
  let root: string;
  let token: string;
  const engines: Engine[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "kiln-cache-reexport-"));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });
  beforeEach(() => {
    // Keys include the commands: a fresh token keeps runs from finding each other's caches.
    token = `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  });
  afterEach(async () => {
    for (const e of engines.splice(0)) await e.close();
  });

  /** A fresh engine with empty state. */
  async function builder(): Promise<Engine> {
    const e = await openEngine({ stateDir: await mkdtemp(join(root, "state-")) });
    engines.push(e);
    return e;
  }

  async function build(engine: Engine, dockerfile: string, given: Partial<BuildRequest>): Promise<Built> {
    const ctx = await mkdtemp(join(root, "ctx-"));
    const req = newBuildRequest(ctx, { dockerfileText: dockerfile, buildArgs: EPOCH, ...given });
    const events: ProgressEvent[] = [];
    const r = await engine.build(req, new LocalSession({ request: req }), {
      onProgress: (e) => events.push(e),
    });
    return { events, metadata: r.metadata };
  }

  /** A two-stage build whose final stage copies the first stage's result and then runs `finalStep`. */
  const dockerfile = (finalStep: string) =>
    `FROM ${world.busybox} AS deps\nRUN echo deps-${token} > /deps.txt\nRUN echo more >> /deps.txt\n` +
    `FROM ${world.busybox}\nCOPY --from=deps /deps.txt /deps.txt\nRUN ${finalStep}\n`;
  const original = () => dockerfile("cat /deps.txt > /final.txt");
  const finalStepChanged = () => dockerfile("cat /deps.txt /deps.txt > /final.txt");

  it("mode=max, local directories: B's re-export carries A's records, links and layers, so C reruns only the changed final step", async () => {
    const fromA = join(root, `cache-a-${token}`);
    const fromB = join(root, `cache-b-${token}`);
    const a = await build(await builder(), original(), {
      cacheTo: [{ type: "local", attrs: { dest: fromA, mode: "max" } }],
    });
    assert.equal(ranSteps(a, /RUN/).length, 3, "A ran every step");
    const b = await build(await builder(), original(), {
      cacheFrom: [{ type: "local", attrs: { src: fromA } }],
      cacheTo: [{ type: "local", attrs: { dest: fromB, mode: "max" } }],
    });
    assert.deepEqual(ranSteps(b, /RUN|COPY/), [], "B hit the cache for the final step");
    assert.deepEqual(
      withoutCreatedAt(await localCacheConfig(fromB)),
      withoutCreatedAt(await localCacheConfig(fromA)),
      "B exported the same records, links and layers as A",
    );
    const c = await build(await builder(), finalStepChanged(), {
      cacheFrom: [{ type: "local", attrs: { src: fromB } }],
    });
    assert.deepEqual(ranSteps(c, /RUN|COPY/), ["RUN cat /deps.txt /deps.txt > /final.txt"]);
  });

  it("inline: B re-embeds A's whole inline cache (its image is A's), so C reruns only the changed final step", async () => {
    const refA = `${world.registry}/kiln-test/cache-reexport-a:${token}`;
    const refB = `${world.registry}/kiln-test/cache-reexport-b:${token}`;
    const pushed = (ref: string) => ({ type: "image", names: [ref], push: true, attrs: {} }) as const;
    const a = await build(await builder(), original(), {
      outputs: [pushed(refA)],
      cacheTo: [{ type: "inline", attrs: {} }],
    });
    const b = await build(await builder(), original(), {
      outputs: [pushed(refB)],
      cacheFrom: [{ type: "registry", attrs: { ref: refA } }],
      cacheTo: [{ type: "inline", attrs: {} }],
    });
    assert.deepEqual(ranSteps(b, /RUN|COPY/), [], "B hit the cache for the final step");
    assert.deepEqual(inlineCacheConfig(refB), inlineCacheConfig(refA));
    assert.equal(b.metadata["containerimage.digest"], a.metadata["containerimage.digest"]);
    const c = await build(await builder(), finalStepChanged(), {
      cacheFrom: [{ type: "registry", attrs: { ref: refB } }],
    });
    assert.deepEqual(ranSteps(c, /RUN|COPY/), ["RUN cat /deps.txt /deps.txt > /final.txt"]);
  });
});
