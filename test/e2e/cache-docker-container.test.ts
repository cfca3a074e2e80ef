// Cache export and import between two docker-container builders, through `docker kiln`: builder A
// builds a multi-stage Dockerfile and exports its cache (registry over HTTPS with the client's
// credentials, a local directory on the client's disk, inline in a pushed image); builder B, fresh
// and empty, imports it, runs no RUN step and produces the identical image (no SOURCE_DATE_EPOCH:
// the layers' times travel with the cache).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { containerName, volumeName } from "../../drivers/docker-container/driver.js";
import { DOCKER, type DockerKiln, installDockerKiln } from "../support/docker-kiln.js";
import { loadWorld, registryLoginConfig } from "../support/world.js";

const world = loadWorld();

describe("cache export and import between docker-container builders (docker kiln, real registries)", function () {
  this.timeout(600_000);
  const id = randomBytes(3).toString("hex");
  const builderA = `kilncachea${id}`;
  const builderB = `kilncacheb${id}`;
  let dir: string;
  let ctx: string;
  let docker: DockerKiln;

  /** The build on `builder`, pushing `tag`; returns the plain progress and the pushed digest. */
  const build = (builder: string, tag: string, cacheFlags: string[]) => {
    const metadata = join(dir, `metadata-${builder}-${randomBytes(2).toString("hex")}.json`);
    const r = docker.ok([
      "build",
      "--builder",
      builder,
      "--progress=plain",
      "--metadata-file",
      metadata,
      "-t",
      tag,
      "--push",
      ...cacheFlags,
      ctx,
    ]);
    const digest = JSON.parse(readFileSync(metadata, "utf8"))["containerimage.digest"] as string;
    return { progress: r.stderr, digest };
  };

  /** The RUN steps' names and whether each was a cache hit, from BuildKit's plain progress. */
  const runSteps = (progress: string) => {
    const names = new Map<string, string>();
    const cached = new Set<string>();
    for (const line of progress.split("\n")) {
      const step = /^#(\d+) (\[.*RUN .*)$/.exec(line);
      if (step) names.set(step[1]!, step[2]!);
      const hit = /^#(\d+) CACHED$/.exec(line);
      if (hit) cached.add(hit[1]!);
    }
    return [...names].map(([n, name]) => ({ name, cached: cached.has(n) }));
  };

  /** No RUN step executed: each one the solver needed was a cache hit (it needs none below a hit). */
  const assertNothingRan = (progress: string) => {
    const steps = runSteps(progress);
    assert.ok(
      steps.some((s) => s.name.includes("RUN cat /out/size > /final")),
      `the final RUN step is in the progress:\n${progress}`,
    );
    for (const s of steps)
      assert.ok(s.cached, `${s.name} ran instead of coming from the cache:\n${progress}`);
  };

  /** Removes builder B (its engine and state) and creates it again: a fresh, empty engine. */
  const freshB = () => {
    docker.run(["rm", builderB]);
    docker.ok([
      "create",
      "--name",
      builderB,
      "--driver",
      "docker-container",
      "--driver-opt",
      "network=host",
      "--bootstrap",
    ]);
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "kiln-e2e-cache-dc-"));
    docker = installDockerKiln(dir);
    writeFileSync(join(docker.env.DOCKER_CONFIG!, "config.json"), JSON.stringify(registryLoginConfig(world)));
    ctx = join(dir, "ctx");
    mkdirSync(ctx);
    writeFileSync(join(ctx, "input.txt"), `input ${id}\n`);
    writeFileSync(
      join(ctx, "Dockerfile"),
      [
        `FROM ${world.busybox} AS build`,
        "COPY input.txt /src/input.txt",
        `RUN sleep 1 && cat /src/input.txt > /artifact && echo ${id} >> /artifact`,
        "RUN wc -c < /artifact > /size",
        `FROM ${world.busybox}`,
        "COPY --from=build /artifact /size /out/",
        "RUN cat /out/size > /final",
        "",
      ].join("\n"),
    );
    docker.ok([
      "create",
      "--name",
      builderA,
      "--driver",
      "docker-container",
      "--driver-opt",
      "network=host",
      "--bootstrap",
    ]);
  });

  after(() => {
    for (const b of [builderA, builderB]) {
      docker.run(["rm", b]);
      spawnSync(DOCKER, ["rm", "-f", containerName(`${b}0`)], { stdio: "ignore" });
      spawnSync(DOCKER, ["volume", "rm", "-f", volumeName(`${b}0`)], { stdio: "ignore" });
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("registry cache (HTTPS, basic auth from the client), mode=max: B runs no RUN step and pushes the identical image", () => {
    const cacheRef = `${world.registryTls}/kiln-e2e-cache-${id}:buildcache`;
    const a = build(builderA, `${world.registryTls}/kiln-e2e-cache-${id}:a`, [
      "--cache-to",
      `type=registry,ref=${cacheRef},mode=max`,
    ]);
    assert.ok(
      runSteps(a.progress).every((s) => !s.cached),
      "A ran its steps",
    );
    freshB();
    const b = build(builderB, `${world.registryTls}/kiln-e2e-cache-${id}:b`, [
      "--cache-from",
      `type=registry,ref=${cacheRef}`,
    ]);
    assertNothingRan(b.progress);
    assert.equal(b.digest, a.digest);
  });

  it("local cache directory on the client's disk: B runs no RUN step and pushes the identical image", () => {
    const cacheDir = join(dir, "cache-local");
    const a = build(builderA, `${world.registryTls}/kiln-e2e-cache-${id}:la`, [
      "--cache-to",
      `type=local,dest=${cacheDir},mode=max`,
    ]);
    assert.ok(JSON.parse(readFileSync(join(cacheDir, "index.json"), "utf8")).manifests.length > 0);
    freshB();
    const b = build(builderB, `${world.registryTls}/kiln-e2e-cache-${id}:lb`, [
      "--cache-from",
      `type=local,src=${cacheDir}`,
    ]);
    assertNothingRan(b.progress);
    assert.equal(b.digest, a.digest);
  });

  it("inline cache in the pushed image: B runs no RUN step of the final stage's chain", () => {
    const ref = `${world.registryTls}/kiln-e2e-cache-${id}:inline`;
    const a = build(builderA, ref, ["--cache-to", "type=inline"]);
    freshB();
    // B embeds its cache too: the config then carries the same cache metadata as A's.
    const b = build(builderB, `${world.registryTls}/kiln-e2e-cache-${id}:inline-b`, [
      "--cache-from",
      ref,
      "--cache-to",
      "type=inline",
    ]);
    assertNothingRan(b.progress);
    assert.equal(b.digest, a.digest);
  });
});
