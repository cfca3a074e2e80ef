import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileContentStore } from "../../src/content/store.js";
import { parseImageRef } from "../../src/oci/image-ref.js";
import { parsePlatform } from "../../src/oci/platform.js";
import { type ImageIndex, MediaType } from "../../src/oci/spec.js";
import { RegistryClient } from "../../src/registry/client.js";
import { NoMatchingPlatformError, RegistryNotFoundError } from "../../src/registry/errors.js";
import { RegistryImageProvider } from "../../src/registry/image-provider.js";
import { loadWorld } from "../support/world.js";

const world = loadWorld();
const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

describe("registry client: pull", () => {
  const registries = [
    { name: "plain HTTP registry", host: world.registry, creds: undefined },
    {
      name: "HTTPS registry with basic auth (CA from certs.d)",
      host: world.registryTls,
      creds: { username: world.registryUser, password: world.registryPassword },
    },
  ];
  let stateDir: string;
  let store: FileContentStore;

  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "kiln-registry-pull-"));
    store = await FileContentStore.open(stateDir);
  });
  afterEach(async () => {
    await rm(stateDir, { recursive: true, force: true });
  });

  for (const reg of registries) {
    describe(reg.name, () => {
      let client: RegistryClient;
      beforeEach(() => {
        client = new RegistryClient({ dockerConfigDir: stateDir });
        if (reg.creds) client.setCredentials(reg.host, reg.creds);
      });
      afterEach(() => client.close());

      it("resolves busybox:latest to an image index descriptor whose digest matches the bytes", async () => {
        const ref = parseImageRef(`${reg.host}/busybox:latest`);
        const desc = await client.resolve(ref);
        assert.equal(desc.mediaType, MediaType.OciIndex);
        const fetched = await client.fetchManifest(ref);
        assert.equal(fetched.descriptor.digest, desc.digest);
        assert.equal(sha256(fetched.bytes), desc.digest);
        assert.equal(fetched.bytes.length, desc.size);
        const platforms = (fetched.manifest as ImageIndex).manifests.map((m) => m.platform?.architecture);
        assert.deepEqual([...platforms].sort(), ["amd64", "arm64"]);
      });

      for (const platform of ["linux/amd64", "linux/arm64"]) {
        it(`pulls the ${platform} manifest, config and layers into the store, each verified`, async () => {
          const ref = parseImageRef(`${reg.host}/busybox:latest`);
          const image = await client.resolveImage(ref, parsePlatform(platform));
          const index = await client.fetchManifest(ref);
          assert.equal(image.indexDigest, index.descriptor.digest);
          assert.equal(image.ref.digest, image.manifestDescriptor.digest);
          assert.equal(sha256(image.manifestBytes), image.manifestDescriptor.digest);
          assert.equal(image.config.architecture, parsePlatform(platform).architecture);
          assert.equal(sha256(image.configBytes), image.configDescriptor.digest);
          for (const layer of image.manifest.layers) {
            const result = await client.pullBlobToStore(store, image.ref, layer);
            assert.equal(result.fetched, true);
            const stored = await store.readBytes(layer.digest);
            assert.equal(sha256(stored), layer.digest);
            assert.equal(stored.length, layer.size);
          }
        });
      }

      it("skips fetching a blob the store already has", async () => {
        const ref = parseImageRef(`${reg.host}/busybox:latest`);
        const image = await client.resolveImage(ref, parsePlatform("linux/amd64"));
        const layer = image.manifest.layers[0]!;
        assert.equal((await client.pullBlobToStore(store, ref, layer)).fetched, true);
        assert.equal((await client.pullBlobToStore(store, ref, layer)).fetched, false);
      });
    });
  }

  describe("errors", () => {
    let client: RegistryClient;
    beforeEach(() => {
      client = new RegistryClient({ dockerConfigDir: stateDir });
    });
    afterEach(() => client.close());

    it("lists the available platforms when none matches the requested one", async () => {
      const ref = parseImageRef(`${world.registry}/busybox:latest`);
      await assert.rejects(client.resolveImage(ref, parsePlatform("linux/s390x")), (err: unknown) => {
        assert.ok(err instanceof NoMatchingPlatformError);
        assert.deepEqual([...err.available].sort(), ["linux/amd64", "linux/arm64"]);
        assert.match(err.message, /linux\/s390x/);
        assert.match(err.message, /available: .*linux\/amd64/);
        return true;
      });
    });

    it("names the registry and reference when a tag does not exist", async () => {
      const ref = parseImageRef(`${world.registry}/busybox:no-such-tag`);
      await assert.rejects(client.resolve(ref), (err: unknown) => {
        assert.ok(err instanceof RegistryNotFoundError);
        assert.match(err.message, new RegExp(`${world.registry}/busybox:no-such-tag`));
        return true;
      });
    });

    it("resolves a reference by digest to the same descriptor as by tag", async () => {
      const byTag = await client.resolve(parseImageRef(`${world.registry}/busybox:latest`));
      const byDigest = await client.resolve(parseImageRef(`${world.registry}/busybox@${byTag.digest}`));
      assert.deepEqual(byDigest, byTag);
    });
  });
});

describe("RegistryImageProvider", () => {
  it("resolves busybox for arm64 pinned to the index digest and fetches its layers into a store", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), "kiln-registry-provider-"));
    const client = new RegistryClient({ dockerConfigDir: stateDir });
    try {
      const store = await FileContentStore.open(stateDir);
      const provider = new RegistryImageProvider(client);
      const resolved = await provider.resolve(world.busybox, parsePlatform("linux/arm64"));
      const index = await client.resolve(parseImageRef(world.busybox));
      assert.equal(resolved.pinnedRef, `${world.busybox}@${index.digest}`);
      assert.equal(resolved.config.architecture, "arm64");
      for (const layer of resolved.manifest.layers) {
        await provider.fetchBlob(resolved.pinnedRef, layer, store);
        assert.equal(sha256(await store.readBytes(layer.digest)), layer.digest);
      }
    } finally {
      client.close();
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});
