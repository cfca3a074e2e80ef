// A docker-container builder through the real Docker CLI plugin path, as a Buildx user drives one:
// `docker kiln create --driver docker-container`, builds whose RUN steps execute in the engine
// container, `--load` into dockerd, a push to the HTTPS registry with basic auth using only the
// credentials in the client's DOCKER_CONFIG (carried to the engine over the build's session),
// every client-side export, then `stop` and `rm`.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { containerName, volumeName } from "../../drivers/docker-container/driver.js";
import { DOCKER, DOCKER_CLI, installDockerKiln } from "../support/docker-kiln.js";
import { loadWorld, registryLoginConfig } from "../support/world.js";

const world = loadWorld();

function dockerOk(...args: string[]): boolean {
  return spawnSync(DOCKER, args, { stdio: "ignore" }).status === 0;
}

describe("docker-container builder through `docker kiln` (real dockerd, registries)", function () {
  this.timeout(300_000);
  const id = randomBytes(3).toString("hex");
  const builder = `kilne2edc${id}`;
  const node = `${builder}0`;
  const loadTag = `kiln-e2e-dc-${id}:load`;
  const dockerTag = `kiln-e2e-dc-${id}:docker`;
  const pushRef = `${world.registryTls}/kiln-e2e-dc-${id}:1`;
  let dir: string;
  let ctx: string;
  let env: NodeJS.ProcessEnv;

  /** `docker kiln ARGS` as the user types it; fails the test with the command's output. */
  const kiln = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) => {
    const r = spawnSync(DOCKER_CLI, ["kiln", ...args], { env: { ...env, ...extraEnv }, encoding: "utf8" });
    if (r.status !== 0)
      assert.fail(`docker kiln ${args.join(" ")} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
    return `${r.stdout}${r.stderr}`;
  };

  before(function () {
    this.timeout(300_000);
    dir = mkdtempSync(join(tmpdir(), "kiln-e2e-dc-"));
    env = { ...installDockerKiln(dir).env, DOCKER_HOST: world.dockerHost };
    // The registry's password exists only here, in the client's config: not on the engine's side.
    writeFileSync(join(env.DOCKER_CONFIG!, "config.json"), JSON.stringify(registryLoginConfig(world)));
    ctx = join(dir, "ctx");
    mkdirSync(ctx);
    writeFileSync(join(ctx, "input.txt"), "from the client\n");
    writeFileSync(
      join(ctx, "Dockerfile"),
      [
        `FROM ${world.busybox} AS build`,
        "COPY input.txt /src/input.txt",
        "RUN mkdir /out && cat /src/input.txt > /out/artifact && echo compiled >> /out/artifact",
        `FROM ${world.busybox}`,
        "COPY --from=build /out/artifact /artifact",
        "RUN wc -l < /artifact > /lines",
        'CMD ["cat", "/artifact", "/lines"]',
        "",
      ].join("\n"),
    );
    // An engine config (buildkitd.toml keys) given at create: the engine must act on it.
    writeFileSync(
      join(dir, "kilnd.toml"),
      '[worker.oci]\n  [[worker.oci.gcpolicy]]\n    keepBytes = "256MB"\n    keepDuration = "24h"\n    filters = ["type==source.local"]\n',
    );
    // A base image only the client's credentials can pull.
    writeFileSync(
      join(ctx, "Dockerfile.private"),
      `FROM ${world.busyboxTls}\nRUN echo private-base > /private\nCMD ["cat", "/private"]\n`,
    );
  });

  after(() => {
    spawnSync(DOCKER, ["rm", "-f", containerName(node)], { stdio: "ignore" });
    spawnSync(DOCKER, ["volume", "rm", "-f", volumeName(node)], { stdio: "ignore" });
    spawnSync(DOCKER, ["rmi", "-f", loadTag, dockerTag], { stdio: "ignore" });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("creates the builder: kilnd runs in a container with host networking and the Docker host's certs.d", () => {
    const out = kiln([
      "create",
      "--name",
      builder,
      "--driver",
      "docker-container",
      "--driver-opt",
      "network=host",
      "--config",
      join(dir, "kilnd.toml"),
      "--bootstrap",
    ]);
    assert.match(out, new RegExp(`^${builder}$`, "m"));
    const state = JSON.parse(
      execFileSync(DOCKER, ["container", "inspect", containerName(node)], { encoding: "utf8" }),
    )[0];
    assert.equal(state.State.Running, true);
    assert.equal(state.HostConfig.NetworkMode, "host");
    const certs = state.Mounts.find((m: { Destination: string }) => m.Destination === "/etc/docker/certs.d");
    assert.ok(certs, "the Docker host's /etc/docker/certs.d is mounted into the engine container");
    assert.equal(certs.RW, false);
    assert.match(kiln(["ls"]), new RegExp(`^ \\\\_ ${node}\\s+\\\\_ default\\s+running\\s`, "m"));
  });

  it("runs the engine with the config given at create: inspect shows its GC policy", () => {
    const out = kiln(["inspect", builder]);
    assert.match(
      out,
      /GC Policy rule#0:\n {2}All: +false\n {2}Filters: +type==source\.local\n {2}Keep Duration: +24h0m0s\n {2}Keep Bytes: +268\.44MB/,
    );
    assert.doesNotMatch(out, /GC Policy rule#1/, "only the configured rule, not the default policy");
  });

  it("builds a multi-stage Dockerfile with RUN steps in the container and --load's it into dockerd", () => {
    const out = kiln(["--builder", builder, "build", "--progress=plain", "--load", "-t", loadTag, ctx]);
    assert.match(out, /RUN mkdir \/out/);
    assert.equal(
      execFileSync(DOCKER, ["run", "--rm", loadTag], { encoding: "utf8" }),
      "from the client\ncompiled\n2\n",
    );
    // The build ran on the builder's engine: its cache lives in the container's state volume.
    assert.match(kiln(["--builder", builder, "du"]), /^[0-9a-z]{12}\s+(true|false)\s+/m);
  });

  it("pulls and pushes through the HTTPS registry with the client's credentials, which never show", () => {
    const metadata = join(dir, "push-metadata.json");
    const out = kiln([
      "--builder",
      builder,
      "build",
      "--progress=plain",
      "-f",
      join(ctx, "Dockerfile.private"),
      "--push",
      "-t",
      pushRef,
      "--metadata-file",
      metadata,
      ctx,
    ]);
    const digest = JSON.parse(readFileSync(metadata, "utf8"))["containerimage.digest"] as string;
    assert.match(digest, /^sha256:[0-9a-f]{64}$/);
    const inspected = JSON.parse(
      execFileSync(
        "skopeo",
        [
          "inspect",
          "--creds",
          `${world.registryUser}:${world.registryPassword}`,
          "--cert-dir",
          `/etc/docker/certs.d/${world.registryTls}`,
          `docker://${pushRef}`,
        ],
        { encoding: "utf8" },
      ),
    );
    assert.equal(inspected.Digest, digest);
    const logs = spawnSync(DOCKER, ["logs", containerName(node)], { encoding: "utf8" });
    for (const text of [out, logs.stdout, logs.stderr])
      assert.ok(!text.includes(world.registryPassword), "the password appears in no output or log");
  });

  it("has no credentials of its own: without them in the client's config, push and private pull are refused", () => {
    const config = join(env.DOCKER_CONFIG!, "config.json");
    const saved = readFileSync(config);
    writeFileSync(config, "{}\n");
    try {
      const r = spawnSync(
        DOCKER_CLI,
        [
          "kiln",
          "--builder",
          builder,
          "build",
          "--push",
          "-t",
          `${world.registryTls}/kiln-e2e-dc-${id}:no`,
          ctx,
        ],
        { env, encoding: "utf8" },
      );
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /401 Unauthorized\); no credentials were sent/);
      // Nor is the private base image, which this engine resolved for the credentialed client.
      const pull = spawnSync(
        DOCKER_CLI,
        ["kiln", "--builder", builder, "build", "-f", join(ctx, "Dockerfile.private"), ctx],
        { env, encoding: "utf8" },
      );
      assert.equal(pull.status, 1, pull.stderr);
      assert.match(pull.stderr, /refused GET of manifest .*401 Unauthorized.*no credentials were sent/);
    } finally {
      writeFileSync(config, saved);
    }
  });

  it("exports type=oci and type=docker archives to the client's disk; docker load reads the latter", () => {
    const oci = join(dir, "image-oci.tar");
    const dockerArchive = join(dir, "image-docker.tar");
    kiln([
      "--builder",
      builder,
      "build",
      "-o",
      `type=oci,dest=${oci}`,
      "-o",
      `type=docker,dest=${dockerArchive},name=${dockerTag}`,
      ctx,
    ]);
    const ociLayout = join(dir, "oci-layout");
    mkdirSync(ociLayout);
    execFileSync("tar", ["-xf", oci, "-C", ociLayout]);
    assert.equal(JSON.parse(readFileSync(join(ociLayout, "oci-layout"), "utf8")).imageLayoutVersion, "1.0.0");
    const index = JSON.parse(readFileSync(join(ociLayout, "index.json"), "utf8"));
    assert.equal(index.manifests.length, 1);
    // skopeo reads the layout on its own: an independent check of what we wrote.
    const viaSkopeo = JSON.parse(
      execFileSync("skopeo", ["inspect", `oci:${ociLayout}`], { encoding: "utf8" }),
    );
    assert.equal(viaSkopeo.Digest, index.manifests[0].digest);

    assert.match(execFileSync(DOCKER, ["load", "-i", dockerArchive], { encoding: "utf8" }), /Loaded image/);
    assert.equal(
      execFileSync(DOCKER, ["run", "--rm", dockerTag], { encoding: "utf8" }),
      "from the client\ncompiled\n2\n",
    );
  });

  it("exports type=local and type=tar to the client's disk", () => {
    const local = join(dir, "local-out");
    const tar = join(dir, "rootfs.tar");
    kiln(["--builder", builder, "build", "-o", `type=local,dest=${local}`, ctx]);
    assert.equal(readFileSync(join(local, "artifact"), "utf8"), "from the client\ncompiled\n");
    assert.equal(readFileSync(join(local, "lines"), "utf8").trim(), "2");
    assert.ok(existsSync(join(local, "bin", "busybox")));
    kiln(["--builder", builder, "build", "-o", `type=tar,dest=${tar}`, ctx]);
    const entries = execFileSync("tar", ["-tf", tar], { encoding: "utf8" }).split("\n");
    assert.ok(entries.includes("artifact"), `artifact in ${entries.slice(0, 20).join(" ")}`);
    assert.ok(entries.includes("lines"));
    assert.equal(
      execFileSync("tar", ["-xOf", tar, "artifact"], { encoding: "utf8" }),
      "from the client\ncompiled\n",
    );
  });

  it("stops the engine container with `docker kiln stop`", () => {
    kiln(["stop", builder]);
    const state = JSON.parse(
      execFileSync(DOCKER, ["container", "inspect", containerName(node)], { encoding: "utf8" }),
    )[0];
    assert.equal(state.State.Running, false);
    assert.match(kiln(["ls"]), new RegExp(`^ \\\\_ ${node}\\s+\\\\_ default\\s+stopped`, "m"));
  });

  it("removes the container and its state volume with `docker kiln rm`", () => {
    kiln(["rm", builder]);
    assert.equal(dockerOk("container", "inspect", containerName(node)), false);
    assert.equal(dockerOk("volume", "inspect", volumeName(node)), false);
    assert.doesNotMatch(kiln(["ls"]), new RegExp(builder));
  });
});
