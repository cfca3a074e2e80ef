// Multi-platform builds on one node through `docker kiln`: the default builder (the engine in the
// plugin's process) on this amd64 host, arm64 steps running under the host's QEMU binfmt handler.
// Each platform is its own definition with its TARGET* arguments; a $BUILDPLATFORM stage runs once
// for all of them; the results are joined into one index (pushed, OCI/Docker archives) or split
// into a folder per platform (local, tar); a multi-platform --load and a RUN for a platform the
// builder cannot run are refused in words.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DOCKER, type DockerKiln, installDockerKiln } from "../support/docker-kiln.js";
import { loadWorld } from "../support/world.js";

const world = loadWorld();

interface IndexJson {
  mediaType: string;
  manifests: { mediaType: string; digest: string; platform?: { os: string; architecture: string } }[];
}

const platformsOf = (index: IndexJson) =>
  index.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`);

/** The distinct steps (`#N` of the plain progress) whose name matches `step`. */
function stepNumbers(progress: string, step: RegExp): string[] {
  const found = new Set<string>();
  for (const line of progress.split("\n")) {
    const m = /^#(\d+) (.*)$/.exec(line);
    if (m && step.test(m[2]!)) found.add(m[1]!);
  }
  return [...found];
}

describe("multi-platform builds on one node through `docker kiln` (arm64 under QEMU)", function () {
  this.timeout(300_000);
  const id = randomBytes(3).toString("hex");
  const repo = `${world.registry}/kiln-e2e/multi-platform-${id}`;
  let dir: string;
  let kiln: DockerKiln;

  /** A build context in `dir`/`name` holding `dockerfile`. */
  const context = (name: string, dockerfile: string): string => {
    const ctx = join(dir, name);
    mkdirSync(ctx, { recursive: true });
    writeFileSync(join(ctx, "Dockerfile"), dockerfile);
    return ctx;
  };
  const ARCH = `FROM ${world.busybox}\nARG TARGETARCH\nRUN uname -m > /arch && echo "$TARGETARCH" > /targetarch\n`;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "kiln-e2e-multi-platform-"));
    kiln = installDockerKiln(dir);
  });
  after(() => {
    spawnSync(DOCKER, ["rmi", "-f", `${repo}:1`], { stdio: "ignore" });
    rmSync(dir, { recursive: true, force: true });
  });

  describe("pushed to the registry", () => {
    const meta = () => join(dir, "push-metadata.json");
    let progress: string;

    before(() => {
      progress = kiln.ok([
        "build",
        "--progress=plain",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        `${repo}:1`,
        "--push",
        "--metadata-file",
        meta(),
        context("push", ARCH),
      ]).stderr;
    });

    it("runs each platform's RUN steps as their own step", () => {
      assert.equal(stepNumbers(progress, /^\[linux\/amd64 2\/2\] RUN uname -m/).length, 1, progress);
      assert.equal(stepNumbers(progress, /^\[linux\/arm64 2\/2\] RUN uname -m/).length, 1, progress);
    });

    it("pushes one OCI index listing linux/amd64 and linux/arm64", () => {
      const index: IndexJson = JSON.parse(
        execFileSync("skopeo", ["inspect", "--tls-verify=false", "--raw", `docker://${repo}:1`], {
          encoding: "utf8",
        }),
      );
      assert.equal(index.mediaType, "application/vnd.oci.image.index.v1+json");
      assert.deepEqual(platformsOf(index), ["linux/amd64", "linux/arm64"]);
    });

    it("writes the index digest and each platform's manifest digest to the metadata file", () => {
      const md = JSON.parse(readFileSync(meta(), "utf8"));
      const pushed = execFileSync(
        "skopeo",
        ["inspect", "--tls-verify=false", "--format", "{{.Digest}}", `docker://${repo}:1`],
        { encoding: "utf8" },
      ).trim();
      assert.equal(md["containerimage.digest"], pushed);
      const index: IndexJson = JSON.parse(
        execFileSync("skopeo", ["inspect", "--tls-verify=false", "--raw", `docker://${repo}@${pushed}`], {
          encoding: "utf8",
        }),
      );
      assert.deepEqual(Object.keys(md["kiln.platforms"]).sort(), ["linux/amd64", "linux/arm64"]);
      for (const m of index.manifests) {
        const platform = `${m.platform?.os}/${m.platform?.architecture}`;
        assert.equal(md["kiln.platforms"][platform].digest, m.digest, platform);
      }
    });

    it("gives dockerd an arm64 image that prints aarch64 from uname -m, as its RUN step did", () => {
      const out = execFileSync(
        DOCKER,
        [
          "run",
          "--rm",
          "--pull",
          "always",
          "--platform",
          "linux/arm64",
          `${repo}:1`,
          "sh",
          "-c",
          "uname -m; cat /arch /targetarch",
        ],
        { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
      );
      assert.equal(out, "aarch64\naarch64\narm64\n");
    });
  });

  it("gives each platform its TARGET* arguments and writes type=local into os_arch[_variant] folders", () => {
    // linux/arm/v7 has no emulator here: its final stage only copies what the build platform made.
    const ctx = context(
      "args",
      [
        `FROM --platform=$BUILDPLATFORM ${world.busybox} AS args`,
        "ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM",
        'RUN echo "$TARGETPLATFORM|$TARGETOS|$TARGETARCH|$TARGETVARIANT|$BUILDPLATFORM" > /args',
        "FROM scratch",
        "COPY --from=args /args /args",
        "",
      ].join("\n"),
    );
    const out = join(dir, "args-out");
    kiln.ok([
      "build",
      "--progress=plain",
      "--platform",
      "linux/amd64,linux/arm64,linux/arm/v7",
      "-o",
      `type=local,dest=${out}`,
      ctx,
    ]);
    assert.deepEqual(readdirSync(out).sort(), ["linux_amd64", "linux_arm64", "linux_arm_v7"]);
    const args = (folder: string) => readFileSync(join(out, folder, "args"), "utf8");
    assert.equal(args("linux_amd64"), "linux/amd64|linux|amd64||linux/amd64\n");
    assert.equal(args("linux_arm64"), "linux/arm64|linux|arm64||linux/amd64\n");
    assert.equal(args("linux_arm_v7"), "linux/arm/v7|linux|arm|v7|linux/amd64\n");
  });

  it("runs a FROM --platform=$BUILDPLATFORM stage once for both target platforms", () => {
    const ctx = context(
      "buildplatform",
      [
        `FROM --platform=$BUILDPLATFORM ${world.busybox} AS build`,
        "RUN head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n' > /nonce",
        `FROM ${world.busybox}`,
        "COPY --from=build /nonce /nonce",
        "RUN uname -m > /arch",
        "",
      ].join("\n"),
    );
    const out = join(dir, "buildplatform-out");
    const progress = kiln.ok([
      "build",
      "--progress=plain",
      "--no-cache",
      "--platform",
      "linux/amd64,linux/arm64",
      "-o",
      `type=local,dest=${out}`,
      ctx,
    ]).stderr;
    assert.equal(stepNumbers(progress, /build 2\/2\] RUN head -c 16/).length, 1, progress);
    // Had the stage run per platform, each would have its own random nonce.
    const nonce = (folder: string) => readFileSync(join(out, folder, "nonce"), "utf8");
    assert.match(nonce("linux_amd64"), /^[0-9a-f]{32}$/);
    assert.equal(nonce("linux_arm64"), nonce("linux_amd64"));
    assert.equal(readFileSync(join(out, "linux_arm64", "arch"), "utf8"), "aarch64\n");
    assert.equal(readFileSync(join(out, "linux_amd64", "arch"), "utf8"), "x86_64\n");
  });

  it("splits a type=tar output into a folder per platform", () => {
    const dest = join(dir, "rootfs.tar");
    kiln.ok([
      "build",
      "--progress=plain",
      "--platform",
      "linux/amd64,linux/arm64",
      "-o",
      `type=tar,dest=${dest}`,
      context("tar", ARCH),
    ]);
    const read = (entry: string) => execFileSync("tar", ["-xOf", dest, entry], { encoding: "utf8" });
    assert.equal(read("linux_amd64/arch"), "x86_64\n");
    assert.equal(read("linux_arm64/arch"), "aarch64\n");
  });

  it("writes an OCI archive whose image is an index of both platforms", () => {
    const dest = join(dir, "image-oci.tar");
    kiln.ok([
      "build",
      "--progress=plain",
      "--platform",
      "linux/amd64,linux/arm64",
      "-o",
      `type=oci,dest=${dest}`,
      context("oci", ARCH),
    ]);
    const index: IndexJson = JSON.parse(
      execFileSync("skopeo", ["inspect", "--raw", `oci-archive:${dest}`], { encoding: "utf8" }),
    );
    assert.equal(index.mediaType, "application/vnd.oci.image.index.v1+json");
    assert.deepEqual(platformsOf(index), ["linux/amd64", "linux/arm64"]);
  });

  it("writes a Docker archive whose image is a Docker manifest list of both platforms", () => {
    const dest = join(dir, "image-docker.tar");
    kiln.ok([
      "build",
      "--progress=plain",
      "--platform",
      "linux/amd64,linux/arm64",
      "-o",
      `type=docker,dest=${dest}`,
      context("docker", ARCH),
    ]);
    const layout = join(dir, "image-docker");
    mkdirSync(layout);
    execFileSync("tar", ["-xf", dest, "-C", layout]);
    const top: IndexJson = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
    const [algorithm, hex] = top.manifests[0]!.digest.split(":");
    const list: IndexJson = JSON.parse(readFileSync(join(layout, "blobs", algorithm!, hex!), "utf8"));
    assert.equal(list.mediaType, "application/vnd.docker.distribution.manifest.list.v2+json");
    assert.deepEqual(platformsOf(list), ["linux/amd64", "linux/arm64"]);
  });

  it("refuses --load of a two-platform build as a usage error before building, saying what to do instead", () => {
    const tag = `kiln-e2e-multi-platform-${id}:load`;
    const r = kiln.run([
      "build",
      "--progress=plain",
      "--platform",
      "linux/amd64,linux/arm64",
      "--load",
      "-t",
      tag,
      context("load", ARCH),
    ]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(
      r.stderr,
      /--load cannot take a multi-platform build \(linux\/amd64, linux\/arm64\): .*not an image index\. Build one platform with --platform to load it, push the index with --push/,
    );
    assert.doesNotMatch(r.stderr, /RUN uname/, "no step ran");
    assert.notEqual(spawnSync(DOCKER, ["image", "inspect", tag], { stdio: "ignore" }).status, 0);
  });

  it("fails a RUN for a platform the builder cannot run, listing the platforms it runs", () => {
    // No emulator for s390x is registered on this host (only QEMU aarch64).
    const ctx = context("s390x", 'FROM scratch\nRUN ["/bin/true"]\n');
    const r = kiln.run(["build", "--progress=plain", "--platform", "linux/s390x", ctx]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(
      r.stderr,
      /^ERROR: .*cannot run linux\/s390x programs on this linux\/amd64 host, which runs linux\/amd64(, [^,:]+)*, linux\/arm64(, [^,:]+)*: no emulator is registered for it; install QEMU/m,
    );
  });
});
