import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileContentStore } from "../../src/content/store.js";
import { sha256Digest } from "../../src/oci/digest.js";
import { parseImageRef } from "../../src/oci/image-ref.js";
import { type Descriptor, type ImageIndex, MediaType } from "../../src/oci/spec.js";
import { RegistryClient } from "../../src/registry/client.js";
import type { RegistryEvent } from "../../src/registry/events.js";
import { loadWorld } from "../support/world.js";
import { skopeoInspect, uniqueRepo, writeRandomImage } from "./registry-support.js";

const world = loadWorld();
const tlsCertDir = `/etc/docker/certs.d/${world.registryTls}`;
const tlsCreds = `${world.registryUser}:${world.registryPassword}`;

describe("registry client: push", function () {
  this.timeout(120_000);
  const registries = [
    { name: "plain HTTP registry", host: world.registry, tls: false },
    { name: "HTTPS registry with basic auth", host: world.registryTls, tls: true },
  ];
  let stateDir: string;
  let store: FileContentStore;
  let client: RegistryClient;
  let events: RegistryEvent[];

  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "kiln-registry-push-"));
    store = await FileContentStore.open(stateDir);
    events = [];
    client = new RegistryClient({ dockerConfigDir: stateDir, onEvent: (e) => events.push(e) });
    client.setCredentials(world.registryTls, {
      username: world.registryUser,
      password: world.registryPassword,
    });
  });
  afterEach(async () => {
    client.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  const inspect = (host: string, ref: string, raw: boolean) =>
    host === world.registryTls
      ? skopeoInspect(ref, { raw, creds: tlsCreds, certDir: tlsCertDir })
      : skopeoInspect(ref, { raw, tlsVerify: false });

  for (const reg of registries) {
    it(`pushes a new image to the ${reg.name} that skopeo reads back byte for byte`, async () => {
      const image = await writeRandomImage(store);
      const ref = parseImageRef(`${reg.host}/${uniqueRepo("push")}:v1`);
      const digest = await client.pushImage(ref, {
        bytes: image.manifestBytes,
        mediaType: MediaType.OciManifest,
        store,
      });
      assert.equal(digest, sha256Digest(image.manifestBytes));
      const raw = await inspect(reg.host, `${ref.registry}/${ref.repository}:v1`, true);
      assert.equal(raw, image.manifestBytes.toString("utf8"));
      const info = JSON.parse(await inspect(reg.host, `${ref.registry}/${ref.repository}:v1`, false));
      assert.equal(info.Digest, digest);
      assert.equal(info.Architecture, "amd64");
      assert.deepEqual(info.Layers, [image.layer.digest]);
      const pushed = events
        .filter((e) => e.type === "blob-pushed")
        .map((e) => (e as { digest: string }).digest);
      assert.deepEqual([...pushed].sort(), [image.layer.digest, image.config.digest].sort());
    });
  }

  it("pushes an index of two images, children by digest before the index by tag", async () => {
    const a = await writeRandomImage(store);
    const b = await writeRandomImage(store);
    const index: ImageIndex = {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        {
          mediaType: MediaType.OciManifest,
          digest: sha256Digest(a.manifestBytes),
          size: a.manifestBytes.length,
          platform: { os: "linux", architecture: "amd64" },
        },
        {
          mediaType: MediaType.OciManifest,
          digest: sha256Digest(b.manifestBytes),
          size: b.manifestBytes.length,
          platform: { os: "linux", architecture: "arm64" },
        },
      ],
    };
    const indexBytes = Buffer.from(JSON.stringify(index));
    const ref = parseImageRef(`${world.registry}/${uniqueRepo("index")}:multi`);
    const digest = await client.pushImage(ref, { bytes: indexBytes, mediaType: MediaType.OciIndex, store });
    assert.equal(digest, sha256Digest(indexBytes));
    const manifestPushes = events.filter((e) => e.type === "manifest-pushed").map((e) => e.reference);
    assert.deepEqual(manifestPushes, [index.manifests[0]!.digest, index.manifests[1]!.digest, "multi"]);
    const raw = await inspect(world.registry, `${ref.registry}/${ref.repository}:multi`, true);
    assert.equal(raw, indexBytes.toString("utf8"));
  });

  for (const reg of registries) {
    it(`mounts a layer from another repository of the ${reg.name} (mount answered 201)`, async () => {
      const image = await writeRandomImage(store);
      const first = parseImageRef(`${reg.host}/${uniqueRepo("mount-src")}:v1`);
      await client.pushImage(first, { bytes: image.manifestBytes, mediaType: MediaType.OciManifest, store });
      events.length = 0;
      const second = parseImageRef(`${reg.host}/${uniqueRepo("mount-dst")}:v1`);
      await client.pushImage(
        second,
        { bytes: image.manifestBytes, mediaType: MediaType.OciManifest, store },
        { mountFrom: [first.repository] },
      );
      const mounts = events.filter((e) => e.type === "blob-mount");
      assert.deepEqual(
        mounts.map((e) => [e.digest, e.status, e.mounted]).sort(),
        [
          [image.layer.digest, 201, true],
          [image.config.digest, 201, true],
        ].sort(),
      );
      assert.equal(events.filter((e) => e.type === "blob-upload-start").length, 0);
      const info = JSON.parse(await inspect(reg.host, `${second.registry}/${second.repository}:v1`, false));
      assert.deepEqual(info.Layers, [image.layer.digest]);
    });
  }

  it("skips a blob the repository already has (HEAD answered 200)", async () => {
    const image = await writeRandomImage(store);
    const ref = parseImageRef(`${world.registry}/${uniqueRepo("exists")}:v1`);
    await client.pushImage(ref, { bytes: image.manifestBytes, mediaType: MediaType.OciManifest, store });
    events.length = 0;
    await client.pushImage(ref, { bytes: image.manifestBytes, mediaType: MediaType.OciManifest, store });
    const exists = events.filter((e) => e.type === "blob-exists").map((e) => e.digest);
    assert.deepEqual([...exists].sort(), [image.layer.digest, image.config.digest].sort());
    assert.equal(events.filter((e) => e.type === "blob-upload-start").length, 0);
  });

  for (const reg of registries) {
    it(`uploads a 20 MB blob to the ${reg.name} in chunks that the registry acknowledges`, async () => {
      const data = randomBytes(20 * 1024 * 1024);
      const info = await store.writeBytes(data);
      const desc: Descriptor = {
        mediaType: "application/octet-stream",
        digest: info.digest,
        size: info.size,
      };
      const ref = parseImageRef(`${reg.host}/${uniqueRepo("chunked")}:v1`);
      const result = await client.pushBlob(ref, desc, () => store.read(desc.digest), {
        chunked: true,
        chunkSize: 6 * 1024 * 1024,
      });
      assert.equal(result.outcome, "uploaded");
      const chunks = events.filter((e) => e.type === "blob-chunk");
      assert.deepEqual(
        chunks.map((c) => [c.start, c.end, c.status]),
        [
          [0, 6291455, 202],
          [6291456, 12582911, 202],
          [12582912, 18874367, 202],
          [18874368, 20971519, 202],
        ],
      );
      const progress = events.flatMap((e) =>
        e.type === "blob-progress" && e.direction === "push" ? [e.bytes] : [],
      );
      assert.equal(progress.at(-1), data.length);
      // Read it back through the client: the registry holds exactly these bytes.
      const back: Buffer[] = [];
      for await (const c of await client.fetchBlob(ref, desc)) back.push(c as Buffer);
      assert.ok(Buffer.concat(back).equals(data));
    });
  }

  it("uploads a blob above the monolithic limit in chunks without being asked", async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const info = await store.writeBytes(data);
    const desc: Descriptor = { mediaType: "application/octet-stream", digest: info.digest, size: info.size };
    const ref = parseImageRef(`${world.registry}/${uniqueRepo("auto-chunk")}:v1`);
    await client.pushBlob(ref, desc, () => store.read(desc.digest), {
      monolithicLimit: 1024 * 1024,
      chunkSize: 1024 * 1024,
    });
    assert.equal(events.filter((e) => e.type === "blob-chunk").length, 3);
  });
});
