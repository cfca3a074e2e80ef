// Layers stream: a push overlaps the compression of a new layer (it goes to each registry as it
// is made), and a pull unpacks a layer while it downloads. Checked against the real registries
// (plain HTTP, and HTTPS with basic auth) with curl reading back what they hold, with uploads that
// fail half-way (the push then uploads the blob as usual), and with a proxy that alters a layer
// on its way (the unpacked snapshot is thrown away).
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { promisify } from "node:util";
import { FileContentStore } from "../../src/content/store.js";
import { type LayerUpload, layerForSnapshot } from "../../src/exporter/layer-blobs.js";
import type { Digest } from "../../src/oci/digest.js";
import { parsePlatform } from "../../src/oci/platform.js";
import { type Descriptor, MediaType } from "../../src/oci/spec.js";
import { RegistryClient } from "../../src/registry/client.js";
import { RegistryDigestMismatchError } from "../../src/registry/errors.js";
import { RegistryImageProvider } from "../../src/registry/image-provider.js";
import { chooseSnapshotter } from "../../src/snapshot/choose.js";
import type { SnapshotId, Snapshotter } from "../../src/snapshot/types.js";
import { teeIntoStore } from "../../src/source/blob-tee.js";
import type { ImageProvider, ResolvedImage } from "../../src/source/image-provider.js";
import { ImageUnpacker } from "../../src/source/image-unpack.js";
import { loadWorld } from "../support/world.js";
import { startProxy } from "./registry-support.js";

const execFileP = promisify(execFile);
const world = loadWorld();

/** A one-file tar of `size` random bytes, made by GNU tar. */
function randomTar(dir: string, size: number): Buffer {
  execFileSync("sh", ["-c", `head -c ${size} /dev/urandom > '${dir}/blob'`]);
  return execFileSync("tar", ["-c", "-C", dir, "-f", "-", "blob"], { maxBuffer: 1 << 28 });
}

/** The blob as the registry serves it, read with curl (credentials and CA for the HTTPS one). */
async function curlBlob(registry: string, repository: string, digest: string): Promise<Buffer> {
  const tls = registry === world.registryTls;
  const args = ["-sfL", "-o", "-"];
  if (tls) args.push("--cacert", world.caFile, "-u", `${world.registryUser}:${world.registryPassword}`);
  args.push(`${tls ? "https" : "http"}://${registry}/v2/${repository}/blobs/${digest}`);
  const { stdout } = await execFileP("curl", args, { encoding: "buffer", maxBuffer: 1 << 28 });
  return stdout;
}

const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}` as Digest;

describe("streamed layer transfers (a push overlapping compression, a pull overlapping unpacking)", function () {
  this.timeout(120_000);
  let dir: string;
  let store: FileContentStore;
  let client: RegistryClient;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-streamed-upload-"));
    store = await FileContentStore.open(join(dir, "state"));
    client = new RegistryClient({ dockerConfigDir: dir });
    client.setCredentials(world.registryTls, {
      username: world.registryUser,
      password: world.registryPassword,
    });
  });
  afterEach(async () => {
    client.close();
    await rm(dir, { recursive: true, force: true });
  });

  const repository = (what: string) =>
    `kiln-test/streamed-${what}-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;

  for (const registry of [world.registry, world.registryTls]) {
    it(`uploads a blob fed as it is made, committed under its digest (${registry})`, async () => {
      const repo = repository("direct");
      const data = randomBytes(9 << 20);
      const up = await client.startStreamingUpload({ registry, repository: repo });
      for (let i = 0; i < data.length; i += 1 << 20) {
        if (!up.stream.write(data.subarray(i, i + (1 << 20))))
          await new Promise((r) => up.stream.once("drain", r));
      }
      up.stream.end();
      const desc: Descriptor = { mediaType: MediaType.OciLayerGzip, digest: sha256(data), size: data.length };
      await up.commit(desc);
      assert.ok((await curlBlob(registry, repo, desc.digest)).equals(data));
    });
  }

  it("refuses to commit bytes under a digest they do not have", async () => {
    const repo = repository("wrong");
    const up = await client.startStreamingUpload({ registry: world.registry, repository: repo });
    up.stream.end(randomBytes(1000));
    await assert.rejects(
      up.commit({ mediaType: MediaType.OciLayer, digest: sha256(Buffer.from("other")), size: 1000 }),
      /400|digest/i,
    );
  });

  it("streams a new layer to every repository while compressing it; a failing upload is dropped", async () => {
    const tar = randomTar(dir, 6 << 20);
    const snapshotter = { diff: () => Readable.from([tar]) } as unknown as Snapshotter;
    const records = { get: async () => undefined, put: async () => {} };
    const repos = [
      { registry: world.registry, repository: repository("layer-a") },
      { registry: world.registryTls, repository: repository("layer-b") },
    ];
    const broken: LayerUpload = {
      stream: new PassThrough(),
      commit: async () => assert.fail("a failed upload is never committed"),
      abort: () => {},
    };
    // Half-way through, this upload's connection "drops".
    let written = 0;
    broken.stream.on("data", (c: Buffer) => {
      written += c.length;
      if (written > 2 << 20) broken.stream.destroy(new Error("connection reset"));
    });
    const rec = await layerForSnapshot(
      snapshotter,
      store,
      records,
      "s1" as SnapshotId,
      "gzip",
      undefined,
      async () => [...(await Promise.all(repos.map((r) => client.startStreamingUpload(r)))), broken],
    );
    assert.equal(rec.diffId, sha256(tar));
    const blob = await store.readBytes(rec.blob.digest);
    for (const r of repos) {
      const pushed = await curlBlob(r.registry, r.repository, rec.blob.digest);
      assert.ok(pushed.equals(blob), `${r.registry}: the registry has the blob the store has`);
    }
    assert.ok(execFileSync("gzip", ["-dc"], { input: blob, maxBuffer: 1 << 28 }).equals(tar));
  });

  /** An unpacker over a real snapshotter, with its indexes in memory. */
  async function unpacker() {
    const snapshotter = await chooseSnapshotter(join(dir, "snapshots"));
    const chains = new Map<string, SnapshotId>();
    const unpack = new ImageUnpacker({
      snapshotter,
      store,
      chains: { get: async (c) => chains.get(c), put: async (c, s) => void chains.set(c, s) },
      layerRecords: { get: async () => undefined, put: async () => {} },
    });
    return { snapshotter, chains, unpack };
  }

  it("unpacks a registry's layers while they download, keeping each blob, verified", async () => {
    const { snapshotter, unpack } = await unpacker();
    const provider = new RegistryImageProvider(client);
    const image = await provider.resolve(world.busybox, parsePlatform("linux/amd64"));
    const top = await unpack.unpack(provider, image);
    assert.ok(top);
    for (const l of image.manifest.layers) assert.ok(await store.has(l.digest), `${l.digest} is kept`);
    const out = await snapshotter.withMounted(top, async (root) =>
      execFileSync(join(root, "bin", "busybox"), ["echo", "unpacked"], { encoding: "utf8" }),
    );
    assert.equal(out, "unpacked\n");
  });

  /** An image of plain tar layers served from memory, recording when each download starts. */
  function imageOf(tars: readonly Buffer[], downloads: number[], holdFirst?: Promise<void>) {
    const layers = tars.map((t) => ({ mediaType: MediaType.OciLayer, digest: sha256(t), size: t.length }));
    const image: ResolvedImage = {
      pinnedRef: "memory/layers",
      manifestDigest: sha256(Buffer.from("manifest")),
      manifest: { schemaVersion: 2, config: layers[0]!, layers },
      config: {
        architecture: "amd64",
        os: "linux",
        config: {},
        rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
      },
    };
    const bytesOf = (desc: Descriptor) => tars[layers.findIndex((l) => l.digest === desc.digest)]!;
    const provider: ImageProvider = {
      resolve: async () => image,
      fetchBlob: async (_ref, desc, s) => void (await s.writeBytes(bytesOf(desc), { expected: desc.digest })),
      fetchBlobStreaming: async (_ref, desc, s, consume) => {
        const i = layers.findIndex((l) => l.digest === desc.digest);
        downloads.push(i);
        const bytes = bytesOf(desc);
        const body = Readable.from(
          (async function* () {
            yield bytes.subarray(0, 512);
            if (i === 0) await holdFirst;
            yield bytes.subarray(512);
          })(),
        );
        await teeIntoStore(body, s, desc, consume);
      },
    };
    return { image, provider };
  }

  it("starts downloading a layer while the layer below it is still being applied", async () => {
    const { snapshotter, unpack } = await unpacker();
    const tars = [randomTar(dir, 10_000), randomTar(dir, 20_000)];
    const downloads: number[] = [];
    let release!: (why: string) => void;
    const released = new Promise<string>((r) => {
      release = r;
    });
    // The first layer's bytes stop midway until the second layer's download has begun (or, when
    // it never begins while the first is applied, until a timeout).
    const { image, provider } = imageOf(
      tars,
      downloads,
      released.then(() => {}),
    );
    const poll = setInterval(() => downloads.includes(1) && release("second download began"), 5);
    const stopWaiting = setTimeout(() => release("timed out"), 2000);
    try {
      const top = await unpack.unpack(provider, image);
      assert.equal(await released, "second download began");
      assert.ok((await snapshotter.stat(top!))?.parent);
    } finally {
      clearInterval(poll);
      clearTimeout(stopWaiting);
    }
  });

  it("fetches the blobs of a lazy unpack but applies no layer until its snapshot is read", async () => {
    const { snapshotter, unpack } = await unpacker();
    const tars = [randomTar(dir, 3000), randomTar(dir, 4000)];
    const { image, provider } = imageOf(tars, []);
    const top = await unpack.unpack(provider, image, undefined, { lazy: true });
    for (const l of image.manifest.layers) assert.ok(await store.has(l.digest));
    assert.equal((await snapshotter.stat(top!))?.lazy, true);
    const size = await snapshotter.withMounted(top!, async (root) => (await stat(join(root, "blob"))).size);
    assert.equal(size, 4000);
  });

  it("fails the first read of a lazily unpacked layer whose content is not its diff ID", async () => {
    const { snapshotter, unpack } = await unpacker();
    const tar = randomTar(dir, 3000);
    const { image, provider } = imageOf([tar], []);
    const wrong = sha256(Buffer.from("another layer"));
    const lying = {
      ...image,
      config: { ...image.config, rootfs: { type: "layers" as const, diff_ids: [wrong] } },
    };
    const top = await unpack.unpack(provider, lying, undefined, { lazy: true });
    await assert.rejects(snapshotter.view(top!), /unpacks to sha256:.*but should be/);
  });

  it("throws away what it unpacked from a layer whose bytes do not match the digest", async () => {
    const { snapshotter, chains, unpack } = await unpacker();
    const good = new RegistryImageProvider(client);
    const image = await good.resolve(world.busybox, parsePlatform("linux/amd64"));
    const proxy = await startProxy(world.registry, {
      rewriteBody(req, body) {
        if (!req.url?.includes("/blobs/") || body.length === 0) return body;
        const flipped = Buffer.from(body);
        flipped[flipped.length - 100]! ^= 0xff;
        return flipped;
      },
    });
    try {
      const tampered = { ...image, pinnedRef: image.pinnedRef.replace(world.registry, proxy.address) };
      await assert.rejects(unpack.unpack(good, tampered), (err: unknown) => {
        assert.ok(
          err instanceof RegistryDigestMismatchError || /digest|unpacks to/.test(String(err)),
          String(err),
        );
        return true;
      });
      assert.equal(await store.has(image.manifest.layers[0]!.digest), false, "no blob kept");
      assert.equal(chains.size, 0, "no chain recorded");
      assert.deepEqual(
        (await snapshotter.list()).filter((s) => s.kind === "committed"),
        [],
        "no snapshot kept",
      );
    } finally {
      await proxy.close();
    }
  });

  it("leaves a small layer to the push (no upload is opened)", async () => {
    const tar = randomTar(dir, 100_000);
    const snapshotter = { diff: () => Readable.from([tar]) } as unknown as Snapshotter;
    let opened = 0;
    await layerForSnapshot(
      snapshotter,
      store,
      { get: async () => undefined, put: async () => {} },
      "s2" as SnapshotId,
      "gzip",
      undefined,
      async () => {
        opened++;
        return [];
      },
    );
    assert.equal(opened, 0);
  });
});
