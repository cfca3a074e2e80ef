import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { type BuildRequest, newBuildRequest } from "../../src/client/build-request.js";
import { type Engine, openEngine } from "../../src/engine/engine.js";
import { sha256Digest } from "../../src/oci/digest.js";
import { LocalSession } from "../../src/session/local-session.js";
import type { ProgressEvent, VertexEvent } from "../../src/solver/progress.js";
import { loadWorld, registryLoginConfig } from "../support/world.js";

const world = loadWorld();
const EPOCH = { SOURCE_DATE_EPOCH: "1700000000" };

interface Built {
  readonly events: ProgressEvent[];
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly warnings: readonly string[];
}

function vertices(events: readonly ProgressEvent[]): VertexEvent[] {
  const out = new Map<string, VertexEvent>();
  for (const e of events) if (e.type === "vertex") out.set(e.vertex, { ...out.get(e.vertex), ...e });
  return [...out.values()];
}
const executed = (b: Built, pattern: RegExp) =>
  vertices(b.events).filter((v) => pattern.test(v.name) && !v.cached && v.completed !== undefined);
const cached = (b: Built, pattern: RegExp) =>
  vertices(b.events).filter((v) => pattern.test(v.name) && v.cached);
const names = (vs: readonly VertexEvent[]) => vs.map((v) => v.name.replace(/^\[.*?\]\s*/, ""));

/** Every blob of an OCI layout, decompressed when gzip, as one text. */
function layoutText(dir: string): string {
  return execFileSync(
    "sh",
    ["-c", `for f in '${dir}'/blobs/sha256/*; do (gzip -dc "$f" 2>/dev/null || cat "$f"); done`],
    { encoding: "latin1", maxBuffer: 256 * 1024 * 1024 },
  );
}

async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, "utf8")) as T;
}

interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** The cache index a local cache's tag names, and its config. */
async function localCache(dir: string, tag = "latest") {
  const index = await readJson<{ manifests: Desc[] }>(join(dir, "index.json"));
  const root = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag)!;
  const blob = (d: string) => join(dir, "blobs", "sha256", d.slice("sha256:".length));
  const cacheIndex = await readJson<{ manifests: Desc[] }>(blob(root.digest));
  const configDesc = cacheIndex.manifests.find(
    (m) => m.mediaType === "application/vnd.buildkit.cacheconfig.v0",
  )!;
  const config = await readJson<{
    layers: { blob: string; parent: number }[];
    records: { digest: string; layers: { layer: number }[] }[];
  }>(blob(configDesc.digest));
  return { index, root, cacheIndex, config, blob };
}

describe("build cache export and import (two real engines: builder A and a fresh builder B)", function () {
  this.timeout(300_000);
  let root: string;
  let savedDockerConfig: string | undefined;
  const engines: Engine[] = [];
  let token: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "kiln-cache-io-"));
    // Credentials for the HTTPS registry, as `docker login` leaves them; engines read them at open.
    await writeFile(join(root, "config.json"), JSON.stringify(registryLoginConfig(world)));
    savedDockerConfig = process.env.DOCKER_CONFIG;
    process.env.DOCKER_CONFIG = root;
  });
  after(async () => {
    if (savedDockerConfig === undefined) delete process.env.DOCKER_CONFIG;
    else process.env.DOCKER_CONFIG = savedDockerConfig;
    await rm(root, { recursive: true, force: true });
  });
  beforeEach(() => {
    // Keys include the commands: a fresh token keeps runs from finding each other's caches.
    token = `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  });
  afterEach(async () => {
    for (const e of engines.splice(0)) await e.close();
  });

  const stateDirs = new Map<Engine, string>();
  async function builder(): Promise<Engine> {
    const stateDir = await mkdtemp(join(root, "state-"));
    const e = await openEngine({ stateDir });
    engines.push(e);
    stateDirs.set(e, stateDir);
    return e;
  }

  async function build(
    engine: Engine,
    dockerfile: string,
    given: Partial<BuildRequest> = {},
  ): Promise<Built> {
    const ctx = await mkdtemp(join(root, "ctx-"));
    await writeFile(join(ctx, "Dockerfile"), dockerfile);
    const req = newBuildRequest(ctx, { dockerfileText: dockerfile, buildArgs: EPOCH, ...given });
    const events: ProgressEvent[] = [];
    const r = await engine.build(req, new LocalSession({ request: req }), {
      onProgress: (e) => events.push(e),
    });
    return { events, metadata: r.metadata, warnings: r.warnings };
  }

  const multiStage = (t: string, finalExtra = "") =>
    `FROM ${world.busybox} AS deps\nRUN echo deps-${t} > /deps.txt\nRUN echo more >> /deps.txt\n` +
    `FROM ${world.busybox}\n${finalExtra}COPY --from=deps /deps.txt /deps.txt\nRUN cat /deps.txt > /final.txt\n`;
  const image = { type: "image", names: [], push: false, attrs: {} } as const;

  it("registry (HTTPS, basic auth), mode=max: B runs nothing, and builds the identical image", async () => {
    const ref = `${world.registryTls}/kiln-test/cache-max:${token}`;
    const df = multiStage(token);
    const a = await build(await builder(), df, {
      outputs: [image],
      cacheTo: [{ type: "registry", attrs: { ref, mode: "max" } }],
    });
    assert.equal(executed(a, /RUN/).length, 3);
    const out = await mkdtemp(join(root, "out-"));
    const b = await build(await builder(), df, {
      outputs: [image, { type: "local", dest: out, attrs: {} }],
      cacheFrom: [{ type: "registry", attrs: { ref } }],
    });
    assert.deepEqual(names(executed(b, /RUN|COPY/)), [], "no step ran on B");
    assert.equal(cached(b, /RUN cat/).length, 1, "the final step shows as cached");
    assert.equal(b.metadata["containerimage.digest"], a.metadata["containerimage.digest"]);
    assert.equal(await readFile(join(out, "final.txt"), "utf8"), `deps-${token}\nmore\n`);
    assert.deepEqual(
      b.warnings.filter((w) => /cache/.test(w)),
      [],
    );
  });

  it("B exports the image of a fully cached build from the cache's blobs, unpacking no layer", async () => {
    const ref = `${world.registry}/kiln-test/cache-lazy:${token}`;
    const df = multiStage(token);
    const a = await build(await builder(), df, {
      outputs: [image],
      cacheTo: [{ type: "registry", attrs: { ref, mode: "max" } }],
    });
    const engineB = await builder();
    const b = await build(engineB, df, {
      outputs: [image],
      cacheFrom: [{ type: "registry", attrs: { ref } }],
    });
    assert.deepEqual(names(executed(b, /RUN|COPY/)), []);
    assert.equal(b.metadata["containerimage.digest"], a.metadata["containerimage.digest"]);
    const snapshotDirs: string[] = [];
    for (const kind of ["overlayfs", "copy"]) {
      const dir = join(stateDirs.get(engineB)!, "snapshots", kind);
      const entries = await readdir(dir).catch(() => [] as string[]);
      snapshotDirs.push(...entries.filter((n) => /^[0-9a-f]{12}$/.test(n)));
    }
    assert.deepEqual(snapshotDirs, [], "no snapshot was given files");
  });

  it("local directory: a valid OCI layout, rewritten atomically with unreferenced blobs pruned; B runs nothing", async () => {
    const dest = join(root, `cache-local-${token}`);
    const df = multiStage(token);
    const engineA = await builder();
    await build(engineA, multiStage(`${token}-old`), {
      cacheTo: [{ type: "local", attrs: { dest, mode: "max" } }],
    });
    const first = await localCache(dest);
    const a = await build(engineA, df, {
      outputs: [image],
      cacheTo: [{ type: "local", attrs: { dest, mode: "max" } }],
    });
    const { index, root: top, cacheIndex, config, blob } = await localCache(dest);
    assert.equal(JSON.parse(await readFile(join(dest, "oci-layout"), "utf8")).imageLayoutVersion, "1.0.0");
    assert.equal(index.manifests.length, 1, "the tag's old entry was replaced");
    assert.notEqual(top.digest, first.root.digest);
    // Every blob the index reaches is there and matches its digest; nothing else is left.
    const reachable = new Set([top.digest, ...cacheIndex.manifests.map((m) => m.digest)]);
    for (const d of reachable) assert.equal(sha256Digest(await readFile(blob(d))), d);
    const present = (await readdir(join(dest, "blobs", "sha256"))).map((f) => `sha256:${f}`);
    assert.deepEqual(present.sort(), [...reachable].sort(), "only reachable blobs remain");
    assert.ok(!present.includes(first.root.digest), "the replaced cache index was pruned");
    for (const l of cacheIndex.manifests.filter((m) => m.mediaType.includes("layer")))
      assert.match(String(l.annotations?.["containerd.io/uncompressed"]), /^sha256:/);
    assert.ok(config.records.length >= 5, "max mode exports every step: sources, RUNs, COPY");

    const engineB = await builder();
    const b = await build(engineB, df, {
      outputs: [image],
      cacheFrom: [{ type: "local", attrs: { src: dest } }],
    });
    assert.deepEqual(names(executed(b, /RUN|COPY/)), []);
    assert.equal(b.metadata["containerimage.digest"], a.metadata["containerimage.digest"]);
    // Lazy: the deps stage's own layers were never needed (the final step hit), so never pulled.
    const layers = cacheIndex.manifests.filter((m) => m.mediaType.includes("layer"));
    const contents = new Map(
      await Promise.all(
        layers.map(async (m) => [m, gunzipSync(await readFile(blob(m.digest))).toString("latin1")] as const),
      ),
    );
    const layerHolding = (text: string) => layers.filter((m) => contents.get(m)!.includes(text));
    const depsOnly = layerHolding(`deps-${token}\n`).filter((m) => !layerHolding("more").includes(m));
    assert.equal(depsOnly.length, 1, "the first deps step has a layer of its own in the cache");
    const inB = (d: string) =>
      readFile(join(stateDirs.get(engineB)!, "content", "blobs", "sha256", d.slice(7))).then(
        () => true,
        () => false,
      );
    assert.equal(await inB(depsOnly[0]!.digest), false, "B never pulled the deps stage's layer");
    const finalLayer = layerHolding(`deps-${token}\nmore\n`);
    assert.ok(
      (await Promise.all(finalLayer.map((m) => inB(m.digest)))).some(Boolean),
      "B pulled the final chain",
    );
  });

  it("inline: B imports the cache from a pushed image's config and runs nothing", async () => {
    const ref = `${world.registry}/kiln-test/cache-inline:${token}`;
    const df = multiStage(token);
    await build(await builder(), df, {
      outputs: [{ type: "image", names: [ref], push: true, attrs: {} }],
      cacheTo: [{ type: "inline", attrs: {} }],
    });
    const config = JSON.parse(
      execFileSync("skopeo", ["inspect", "--raw", "--config", "--tls-verify=false", `docker://${ref}`], {
        encoding: "utf8",
      }),
    );
    const inline = JSON.parse(Buffer.from(config["moby.buildkit.cache.v0"], "base64").toString());
    assert.ok(inline.records.length >= 2, "the image config carries the cache records");
    const pushedB = `${world.registry}/kiln-test/cache-inline-b:${token}`;
    const b = await build(await builder(), df, {
      outputs: [{ type: "image", names: [pushedB], push: true, attrs: {} }],
      cacheFrom: [{ type: "registry", attrs: { ref } }],
    });
    assert.deepEqual(names(executed(b, /RUN|COPY/)), []);
    const layers = (r: string) =>
      JSON.parse(
        execFileSync("skopeo", ["inspect", "--tls-verify=false", `docker://${r}`], { encoding: "utf8" }),
      ).Layers;
    assert.deepEqual(layers(pushedB), layers(ref), "B's image has A's layers");
  });

  it("BUILDKIT_INLINE_CACHE=1 also embeds the cache", async () => {
    const ref = `${world.registry}/kiln-test/cache-inline-arg:${token}`;
    await build(await builder(), `FROM ${world.busybox}\nRUN echo arg-${token} > /a\n`, {
      buildArgs: { ...EPOCH, BUILDKIT_INLINE_CACHE: "1" },
      outputs: [{ type: "image", names: [ref], push: true, attrs: {} }],
    });
    const config = JSON.parse(
      execFileSync("skopeo", ["inspect", "--raw", "--config", "--tls-verify=false", `docker://${ref}`], {
        encoding: "utf8",
      }),
    );
    assert.equal(typeof config["moby.buildkit.cache.v0"], "string");
  });

  it("mode=min reuses only the final stage's chain; mode=max also the intermediate stage", async () => {
    const min = `${world.registry}/kiln-test/cache-min:${token}`;
    const max = `${world.registry}/kiln-test/cache-max:${token}`;
    await build(await builder(), multiStage(token), {
      cacheTo: [
        { type: "registry", attrs: { ref: min, mode: "min" } },
        { type: "registry", attrs: { ref: max, mode: "max" } },
      ],
    });
    // A change before the COPY in the final stage: the final stage misses, and needs the deps stage.
    const changed = multiStage(token, `RUN echo changed > /changed\n`);
    const withMin = await build(await builder(), changed, {
      cacheFrom: [{ type: "registry", attrs: { ref: min } }],
    });
    assert.deepEqual(names(executed(withMin, /echo deps|echo more/)), [
      `RUN echo deps-${token} > /deps.txt`,
      "RUN echo more >> /deps.txt",
    ]);
    const withMax = await build(await builder(), changed, {
      cacheFrom: [{ type: "registry", attrs: { ref: max } }],
    });
    assert.deepEqual(
      names(executed(withMax, /echo deps|echo more/)),
      [],
      "the deps stage came from the cache",
    );
    assert.equal(cached(withMax, /echo more/).length, 1);
    assert.deepEqual(names(executed(withMax, /RUN/)), [
      "RUN echo changed > /changed",
      "RUN cat /deps.txt > /final.txt",
    ]);
  });

  it("a record whose blob is gone from the registry runs its step again, with a warning", async () => {
    const repo = "kiln-test/cache-gone";
    const ref = `${world.registry}/${repo}:${token}`;
    const df = `FROM ${world.busybox}\nRUN echo first-${token} > /a\nRUN echo second-${token} > /b\n`;
    await build(await builder(), df, { cacheTo: [{ type: "registry", attrs: { ref, mode: "max" } }] });
    // The top of the deepest layer chain is the last step's own layer.
    const index = JSON.parse(
      execFileSync(
        "curl",
        [
          "-sf",
          "-H",
          "Accept: application/vnd.oci.image.index.v1+json",
          `http://${world.registry}/v2/${repo}/manifests/${token}`,
        ],
        {
          encoding: "utf8",
        },
      ),
    ) as { manifests: Desc[] };
    const configDesc = index.manifests.find(
      (m) => m.mediaType === "application/vnd.buildkit.cacheconfig.v0",
    )!;
    const config = JSON.parse(
      execFileSync("curl", ["-sf", `http://${world.registry}/v2/${repo}/blobs/${configDesc.digest}`], {
        encoding: "utf8",
      }),
    ) as { layers: { blob: string; parent: number }[] };
    const depth = (i: number): number => (i < 0 ? 0 : 1 + depth(config.layers[i]!.parent));
    const top = config.layers.map((l, i) => ({ l, d: depth(i) })).sort((x, y) => y.d - x.d)[0]!.l.blob;
    execFileSync("curl", ["-sf", "-X", "DELETE", `http://${world.registry}/v2/${repo}/blobs/${top}`]);
    const status = execFileSync(
      "curl",
      [
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-I",
        `http://${world.registry}/v2/${repo}/blobs/${top}`,
      ],
      {
        encoding: "utf8",
      },
    );
    assert.equal(status, "404", "the registry no longer has the blob");

    const out = await mkdtemp(join(root, "out-"));
    const b = await build(await builder(), df, {
      outputs: [{ type: "local", dest: out, attrs: {} }],
      cacheFrom: [{ type: "registry", attrs: { ref } }],
    });
    assert.deepEqual(names(executed(b, /RUN/)), [`RUN echo second-${token} > /b`]);
    assert.equal(cached(b, /echo first/).length, 1, "the step before it still came from the cache");
    assert.ok(
      b.warnings.some((w) => w.includes("the step runs instead")),
      b.warnings.join("\n"),
    );
    assert.equal(await readFile(join(out, "b"), "utf8"), `second-${token}\n`);
  });

  it("a missing cache ref is a warning, and the build runs", async () => {
    const b = await build(await builder(), `FROM ${world.busybox}\nRUN echo alone-${token} > /a\n`, {
      cacheFrom: [
        { type: "registry", attrs: { ref: `${world.registry}/kiln-test/cache-none:${token}` } },
        { type: "local", attrs: { src: join(root, "no-such-dir") } },
      ],
    });
    assert.equal(executed(b, /RUN/).length, 1);
    assert.equal(
      b.warnings.filter((w) => /: not found \(.*\); building without it/.test(w)).length,
      2,
      b.warnings.join("\n"),
    );
  });

  it("never exports a secret's value or a cache mount's content", async () => {
    const dest = join(root, `cache-secret-${token}`);
    const secret = `kiln-secret-${token}`;
    const secretFile = join(root, `secret-${token}`);
    await writeFile(secretFile, secret);
    await build(
      await builder(),
      `FROM ${world.busybox}\nRUN --mount=type=secret,id=tok cp /run/secrets/tok /tmp/s && echo visible-${token} > /visible && rm /tmp/s\n` +
        `RUN --mount=type=cache,target=/cache echo cachemount-${token} > /cache/marker && echo ok > /ok\n`,
      {
        secrets: [{ id: "tok", source: { kind: "file", path: secretFile } }],
        cacheTo: [
          {
            type: "local",
            attrs: { dest, mode: "max", compression: "uncompressed", "force-compression": "true" },
          },
        ],
      },
    );
    const text = layoutText(dest);
    assert.ok(text.includes(`visible-${token}`), "the layers were read (what the step wrote is there)");
    assert.ok(!text.includes(secret), "the secret's value is in no exported blob");
    assert.ok(!text.includes(`cachemount-${token}`), "the cache mount's content is in no exported blob");
    const { cacheIndex } = await localCache(dest);
    for (const l of cacheIndex.manifests.filter((m) => m.mediaType.includes("layer")))
      assert.equal(
        l.mediaType,
        "application/vnd.oci.image.layer.v1.tar",
        "force-compression=true re-encoded",
      );
  });

  it("ignore-error=true turns a failed export into a warning", async () => {
    const b = await build(await builder(), `FROM ${world.busybox}\nRUN echo ignored-${token} > /a\n`, {
      cacheTo: [
        { type: "registry", attrs: { ref: "127.0.0.1:1/kiln-test/unreachable:x", "ignore-error": "true" } },
      ],
    });
    assert.ok(
      b.warnings.some((w) => /cache export to .* failed \(ignored\)/.test(w)),
      b.warnings.join("\n"),
    );
    await assert.rejects(
      build(await builder(), `FROM ${world.busybox}\nRUN echo failing-${token} > /a\n`, {
        cacheTo: [{ type: "registry", attrs: { ref: "127.0.0.1:1/kiln-test/unreachable:x" } }],
      }),
      /cache export to 127\.0\.0\.1:1\/kiln-test\/unreachable:x failed/,
    );
  });
});
