// The image exporters' Buildx attributes, each checked with a tool that is not Kiln: skopeo reads
// what the registries hold (plain HTTP, and HTTPS with basic auth), umoci unpacks OCI layouts,
// dockerd loads and runs Docker archives.
import assert from "node:assert/strict";
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type BuildRequest, newBuildRequest, type OutputSpec } from "../../src/client/build-request.js";
import { type Engine, openEngine } from "../../src/engine/engine.js";
import { type Descriptor, type ImageIndex, type ImageManifest, MediaType } from "../../src/oci/spec.js";
import { LocalSession } from "../../src/session/local-session.js";
import { loadWorld, registryLoginConfig } from "../support/world.js";

const execFileP = promisify(execFile);
const world = loadWorld();
const EPOCH = 1700000000;
const AMD64 = { os: "linux", architecture: "amd64" };
const ARM64 = { os: "linux", architecture: "arm64" };

interface Built {
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly imageId?: string;
}

/** A repository no other run uses, on the plain or the HTTPS registry. */
function repo(name: string, host = world.registry): string {
  return `${host}/kiln-test/exporter-${name}-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
}

describe("image exporters: Buildx attributes (checked with skopeo, umoci, dockerd)", function () {
  this.timeout(240_000);
  let state: string;
  let engine: Engine;
  let dir: string;
  let dockerConfig: string;
  const savedDockerConfig = process.env.DOCKER_CONFIG;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-exporter-"));
    // The engine runs in this process: the HTTPS registry's credentials reach it (and the session)
    // through DOCKER_CONFIG, as a `docker login` would have left them.
    dockerConfig = join(dir, "docker-config");
    await mkdir(dockerConfig);
    await writeFile(join(dockerConfig, "config.json"), JSON.stringify(registryLoginConfig(world)));
    process.env.DOCKER_CONFIG = dockerConfig;
    state = join(dir, "state");
    engine = await openEngine({ stateDir: state });
  });
  after(async () => {
    await engine.close();
    if (savedDockerConfig === undefined) delete process.env.DOCKER_CONFIG;
    else process.env.DOCKER_CONFIG = savedDockerConfig;
    await rm(dir, { recursive: true, force: true });
  });

  /** Builds `dockerfile` in a fresh context holding `files`. */
  async function build(
    dockerfile: string,
    outputs: OutputSpec[],
    given: Partial<BuildRequest> = {},
    files: Record<string, string | Buffer> = {},
  ): Promise<Built> {
    const ctx = await mkdtemp(join(dir, "ctx-"));
    await writeFile(join(ctx, "Dockerfile"), dockerfile);
    for (const [name, data] of Object.entries(files)) await writeFile(join(ctx, name), data);
    const req = newBuildRequest(ctx, { dockerfileText: dockerfile, outputs, ...given });
    const r = await engine.build(req, new LocalSession({ request: req }), {});
    return { metadata: r.metadata, imageId: r.imageId };
  }

  const image = (names: string[], attrs: Record<string, string> = {}, push = true): OutputSpec => ({
    type: "image",
    names,
    push,
    attrs,
  });

  async function skopeo(args: string[], ref: string): Promise<string> {
    const tls = ref.startsWith(`${world.registryTls}/`)
      ? [
          "--creds",
          `${world.registryUser}:${world.registryPassword}`,
          "--cert-dir",
          `/etc/docker/certs.d/${world.registryTls}`,
        ]
      : ["--tls-verify=false"];
    const { stdout } = await execFileP("skopeo", [...args, ...tls, `docker://${ref}`], {
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout;
  }
  const inspect = async (ref: string) => JSON.parse(await skopeo(["inspect"], ref));
  const raw = async <T>(ref: string): Promise<T> => JSON.parse(await skopeo(["inspect", "--raw"], ref)) as T;
  const rawConfig = async (ref: string) => JSON.parse(await skopeo(["inspect", "--raw", "--config"], ref));
  const repoOf = (ref: string) => ref.replace(/:[^:/]+$/, "");

  /** The layer digests of the host's busybox image, as skopeo reads them. */
  async function busyboxLayers(): Promise<string[]> {
    return (await inspect(world.busybox)).Layers;
  }

  it("pushes to every name= (two repositories), and the metadata is Buildx's", async () => {
    const a = `${repo("names-a")}:v1`;
    const b = `${repo("names-b")}:v2`;
    const built = await build(
      `FROM ${world.busybox}\nCOPY data /data\n`,
      [image([a, b], { "name-canonical": "true" })],
      {},
      {
        data: randomBytes(64),
      },
    );
    const [ia, ib] = [await inspect(a), await inspect(b)];
    assert.equal(ia.Digest, built.metadata["containerimage.digest"]);
    assert.equal(ib.Digest, ia.Digest, "the same image under both names");
    assert.equal(built.metadata["image.name"], `${a},${b}`);
    const desc = built.metadata["containerimage.descriptor"] as Descriptor;
    assert.equal(desc.digest, ia.Digest);
    assert.equal(desc.mediaType, MediaType.OciManifest);
    assert.deepEqual(desc.platform, AMD64, "a lone manifest's descriptor keeps its platform");
    const manifest = await raw<ImageManifest>(a);
    assert.equal(built.metadata["containerimage.config.digest"], manifest.config.digest);
    assert.equal(built.imageId, manifest.config.digest, "--iidfile gets the config digest");
    // name-canonical names the image NAME@DIGEST in an image store; a registry gets the names as given.
    const tags = JSON.parse(await skopeo(["list-tags"], repoOf(a))).Tags;
    assert.deepEqual(tags, ["v1"]);
  });

  it("push-by-digest=true pushes the manifest with no tag; the metadata gives the digest", async () => {
    const name = repo("bydigest");
    const built = await build(
      `FROM ${world.busybox}\nCOPY data /data\n`,
      [image([name], { "push-by-digest": "true" })],
      {},
      {
        data: randomBytes(64),
      },
    );
    const digest = String(built.metadata["containerimage.digest"]);
    assert.match(digest, /^sha256:[a-f0-9]{64}$/);
    const pushed = await skopeo(["inspect", "--raw"], `${name}@${digest}`);
    assert.equal(`sha256:${createHash("sha256").update(pushed).digest("hex")}`, digest);
    const res = await fetch(`http://${world.registry}/v2/${name.slice(world.registry.length + 1)}/tags/list`);
    const tags = res.ok ? ((await res.json()) as { tags: string[] | null }).tags : null;
    assert.ok(!tags || tags.length === 0, `no tag was pushed (tags: ${JSON.stringify(tags)})`);
    assert.equal(built.metadata["image.name"], name);
  });

  it("oci-mediatypes=false gives a Docker schema 2 manifest list, manifests, config and layers", async () => {
    const name = `${repo("docker-types")}:1`;
    const built = await build(
      `FROM ${world.busybox}\nCOPY data /data\n`,
      [image([name], { "oci-mediatypes": "false" })],
      { platforms: [AMD64, ARM64] },
      { data: randomBytes(64) },
    );
    const index = await raw<ImageIndex>(name);
    assert.equal(index.mediaType, MediaType.DockerManifestList);
    assert.deepEqual(
      index.manifests.map((m) => [m.mediaType, m.platform?.architecture]),
      [
        [MediaType.DockerManifest, "amd64"],
        [MediaType.DockerManifest, "arm64"],
      ],
    );
    for (const m of index.manifests) {
      const manifest = await raw<ImageManifest>(`${repoOf(name)}@${m.digest}`);
      assert.equal(manifest.mediaType, MediaType.DockerManifest);
      assert.equal(manifest.config.mediaType, MediaType.DockerConfig);
      assert.equal(manifest.layers.length, 2);
      for (const l of manifest.layers)
        assert.equal(l.mediaType, MediaType.DockerLayerGzip, "base layers too");
    }
    const indexBytes = await skopeo(["inspect", "--raw"], name);
    assert.equal(
      built.metadata["containerimage.digest"],
      `sha256:${createHash("sha256").update(indexBytes).digest("hex")}`,
    );
    assert.equal(
      built.imageId,
      built.metadata["containerimage.digest"],
      "an index: --iidfile gets its digest",
    );
    assert.equal(built.metadata["containerimage.config.digest"], undefined);
    // The default stays OCI.
    const oci = `${repo("oci-types")}:1`;
    await build(`FROM ${world.busybox}\nCOPY data /data\n`, [image([oci])], {}, { data: randomBytes(64) });
    const m = await raw<ImageManifest>(oci);
    assert.equal(m.mediaType, MediaType.OciManifest);
    for (const l of m.layers) assert.equal(l.mediaType, MediaType.OciLayerGzip);
  });

  it("compression=uncompressed applies to new layers; force-compression=true to the base image's too", async () => {
    const base = await busyboxLayers();
    const plain = `${repo("uncompressed")}:1`;
    await build(
      `FROM ${world.busybox}\nCOPY data /data\n`,
      [image([plain], { compression: "uncompressed" })],
      {},
      {
        data: randomBytes(4096),
      },
    );
    const m1 = await raw<ImageManifest>(plain);
    assert.deepEqual(
      m1.layers.map((l) => l.mediaType),
      [MediaType.OciLayerGzip, MediaType.OciLayer],
      "the base layer is reused as it is",
    );
    assert.equal(m1.layers[0]!.digest, base[0]);
    const forced = `${repo("forced")}:1`;
    await build(
      `FROM ${world.busybox}\nCOPY data /data\n`,
      [image([forced], { compression: "uncompressed", "force-compression": "true" })],
      {},
      { data: randomBytes(4096) },
    );
    const m2 = await raw<ImageManifest>(forced);
    assert.deepEqual(
      m2.layers.map((l) => l.mediaType),
      [MediaType.OciLayer, MediaType.OciLayer],
    );
    // skopeo copies every blob, checking each digest; none is gzip.
    const copy = join(dir, "forced-copy");
    await execFileP("skopeo", ["copy", "--src-tls-verify=false", `docker://${forced}`, `dir:${copy}`]);
    for (const l of m2.layers) {
      const fh = await open(join(copy, l.digest.slice("sha256:".length)), "r");
      const head = Buffer.alloc(2);
      await fh.read(head, 0, 2, 0);
      await fh.close();
      assert.notDeepEqual([...head], [0x1f, 0x8b], `${l.digest} is a plain tar`);
    }
    // The config's diff IDs still describe the layers (the uncompressed base layer is the same tar).
    const config = await rawConfig(forced);
    assert.equal(config.rootfs.diff_ids[0], (await rawConfig(world.busybox)).rootfs.diff_ids[0]);
    assert.equal(m2.layers[0]!.digest, config.rootfs.diff_ids[0], "an uncompressed blob is its own diff ID");
  });

  it("compression-level=0 stores and compression-level=9 compresses (gzip either way)", async () => {
    const text = Buffer.from("the same line of text, again and again\n".repeat(50_000));
    const sizes: number[] = [];
    for (const level of ["0", "9"]) {
      const name = `${repo(`level${level}`)}:1`;
      await build(
        `FROM ${world.busybox}\nCOPY data /data\n`,
        [image([name], { "compression-level": level })],
        {},
        { data: Buffer.concat([text, randomBytes(16)]) },
      );
      const layer = (await raw<ImageManifest>(name)).layers[1]!;
      assert.equal(layer.mediaType, MediaType.OciLayerGzip);
      sizes.push(layer.size);
    }
    assert.ok(sizes[0]! > text.length, `level 0 stores (${sizes[0]} bytes)`);
    assert.ok(sizes[1]! < text.length / 50, `level 9 compresses (${sizes[1]} bytes)`);
    await assert.rejects(
      build(`FROM ${world.busybox}\n`, [image([`${repo("badlevel")}:1`], { "compression-level": "12" })]),
      /compression-level=12 is out of range/,
    );
  });

  it("puts annotation.*, annotation-index.*, annotation-manifest[PLATFORM].* and descriptor annotations where BuildKit does", async () => {
    const name = `${repo("annotations")}:1`;
    const built = await build(
      `FROM ${world.busybox}\nCOPY data /data\n`,
      [
        image([name], {
          "annotation.org.opencontainers.image.title": "kiln test",
          "annotation-index.org.opencontainers.image.description": "the index",
          "annotation-manifest[linux/arm64].com.example.arch": "arm",
          "annotation-manifest-descriptor.com.example.desc": "on the descriptor",
          "annotation-index-descriptor.com.example.root": "root",
        }),
      ],
      { platforms: [AMD64, ARM64] },
      { data: randomBytes(64) },
    );
    const index = await raw<ImageIndex>(name);
    assert.deepEqual(index.annotations, { "org.opencontainers.image.description": "the index" });
    for (const m of index.manifests) {
      assert.deepEqual(m.annotations, { "com.example.desc": "on the descriptor" });
      const manifest = await raw<ImageManifest>(`${repoOf(name)}@${m.digest}`);
      const expected: Record<string, string> = { "org.opencontainers.image.title": "kiln test" };
      if (m.platform?.architecture === "arm64") expected["com.example.arch"] = "arm";
      assert.deepEqual(manifest.annotations, expected, m.platform?.architecture);
    }
    const desc = built.metadata["containerimage.descriptor"] as Descriptor;
    assert.deepEqual(desc.annotations, { "com.example.root": "root" });
    // A single-platform image carries manifest annotations too.
    const single = `${repo("annotations-single")}:1`;
    await build(`FROM ${world.busybox}\n`, [image([single], { "annotation.com.example.one": "1" })]);
    assert.deepEqual((await raw<ImageManifest>(single)).annotations, { "com.example.one": "1" });
    await assert.rejects(
      build(`FROM ${world.busybox}\n`, [
        image([`${repo("annotations-docker")}:1`], {
          "oci-mediatypes": "false",
          "annotation-index.x": "y",
        }),
      ]),
      /cannot export annotations with "oci-mediatypes=false"/,
    );
  });

  it("rewrite-timestamp=true with SOURCE_DATE_EPOCH: two builds 2 s apart give the same digest", async () => {
    const df = `FROM ${world.busybox}\nRUN echo reproducible > /out.txt && mkdir -p /made/here && touch /made/here/f\n`;
    const args = { buildArgs: { SOURCE_DATE_EPOCH: String(EPOCH) }, noCache: true };
    const name = repo("rewrite");
    const layout = join(dir, "rewrite-layout");
    const first = await build(
      df,
      [
        image([`${name}:one`], { "rewrite-timestamp": "true" }),
        {
          type: "oci",
          dest: layout,
          tar: false,
          names: ["example.com/rewrite:1"],
          attrs: { "rewrite-timestamp": "true" },
        },
      ],
      args,
    );
    await new Promise((r) => setTimeout(r, 2000));
    const second = await build(df, [image([`${name}:two`], { "rewrite-timestamp": "true" })], args);
    assert.equal(second.metadata["containerimage.digest"], first.metadata["containerimage.digest"]);
    assert.equal((await inspect(`${name}:two`)).Digest, (await inspect(`${name}:one`)).Digest);
    // The base image's layer is left as it is; the RUN layer's times are the epoch (umoci applies them).
    const manifest = await raw<ImageManifest>(`${name}:one`);
    assert.equal(manifest.layers[0]!.digest, (await busyboxLayers())[0]);
    const config = await rawConfig(`${name}:one`);
    assert.equal(config.created, new Date(EPOCH * 1000).toISOString().replace(".000Z", "Z"));
    execFileSync("umoci", ["unpack", "--rootless", "--image", `${layout}:1`, join(dir, "rewrite-bundle")]);
    const rootfs = join(dir, "rewrite-bundle", "rootfs");
    assert.equal(await readFile(join(rootfs, "out.txt"), "utf8"), "reproducible\n");
    for (const p of ["out.txt", "made", "made/here", "made/here/f"])
      assert.equal((await stat(join(rootfs, p))).mtimeMs, EPOCH * 1000, p);
    // Without the rewrite, the RUN step's file times differ between the two builds.
    const plainA = await build(df, [image([`${name}:plain-a`], {}, false)], args);
    await new Promise((r) => setTimeout(r, 1100));
    const plainB = await build(df, [image([`${name}:plain-b`], {}, false)], args);
    assert.notEqual(plainA.metadata["containerimage.digest"], plainB.metadata["containerimage.digest"]);
  });

  it("pushes to the HTTPS registry with basic auth from DOCKER_CONFIG, which skopeo reads back", async () => {
    const name = `${repo("tls", world.registryTls)}:1`;
    const built = await build(
      `FROM ${world.busyboxTls}\nCOPY data /data\n`,
      [image([name], { "annotation.com.example.tls": "yes", "oci-mediatypes": "false" })],
      {},
      { data: randomBytes(64) },
    );
    const info = await inspect(name);
    assert.equal(info.Digest, built.metadata["containerimage.digest"]);
    const manifest = await raw<ImageManifest>(name);
    assert.equal(manifest.mediaType, MediaType.DockerManifest);
    assert.deepEqual(manifest.annotations, { "com.example.tls": "yes" });
  });

  it("writes type=oci,tar=false as a layout umoci unpacks, with store=true accepted", async () => {
    const layout = join(dir, "layout");
    const built = await build(`FROM ${world.busybox}\nRUN echo from-layout > /msg\n`, [
      {
        type: "oci",
        dest: layout,
        tar: false,
        names: ["example.com/kiln/layout:v1"],
        attrs: { store: "true" },
      },
    ]);
    const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as ImageIndex;
    assert.equal(index.manifests[0]!.digest, built.metadata["containerimage.digest"]);
    assert.equal(index.manifests[0]!.annotations?.["org.opencontainers.image.ref.name"], "v1");
    const blobs = await readdir(join(layout, "blobs", "sha256"));
    assert.ok(blobs.length >= 4, "manifest, config and two layers");
    execFileSync("umoci", ["unpack", "--rootless", "--image", `${layout}:v1`, join(dir, "layout-bundle")]);
    assert.equal(await readFile(join(dir, "layout-bundle", "rootfs", "msg"), "utf8"), "from-layout\n");
  });

  it("writes a Docker tarball that docker loads and runs; its media types are Docker's", async () => {
    const tag = `kiln-exporter-test:${Date.now()}`;
    const file = join(dir, "docker.tar");
    const built = await build(
      `FROM ${world.busybox}\nRUN echo from-docker-tar > /msg\nCMD ["cat", "/msg"]\n`,
      [{ type: "docker", dest: file, tar: true, names: [tag], attrs: {} }],
    );
    assert.equal(
      (built.metadata["containerimage.descriptor"] as Descriptor).mediaType,
      MediaType.DockerManifest,
    );
    execFileSync("/usr/bin/docker", ["load", "-i", file], { stdio: "pipe" });
    try {
      assert.equal(
        execFileSync("/usr/bin/docker", ["run", "--rm", tag], { encoding: "utf8" }),
        "from-docker-tar\n",
      );
      const id = execFileSync("/usr/bin/docker", ["image", "inspect", "-f", "{{.Id}}", tag], {
        encoding: "utf8",
      });
      assert.equal(id.trim(), built.imageId, "docker's image ID is the config digest Kiln reports");
    } finally {
      spawnSync("/usr/bin/docker", ["rmi", "-f", tag]);
    }
  });
});
