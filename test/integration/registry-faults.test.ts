import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileContentStore } from "../../src/content/store.js";
import { parseImageRef } from "../../src/oci/image-ref.js";
import { parsePlatform } from "../../src/oci/platform.js";
import { MediaType } from "../../src/oci/spec.js";
import { RegistryClient } from "../../src/registry/client.js";
import { RegistryDigestMismatchError, RegistryError } from "../../src/registry/errors.js";
import type { RegistryEvent } from "../../src/registry/events.js";
import { loadWorld } from "../support/world.js";
import { type LoopbackProxy, startProxy, uniqueRepo, writeRandomImage } from "./registry-support.js";

const world = loadWorld();
const fastRetry = { baseDelayMs: 10, maxDelayMs: 50 };

describe("registry client: faults on the wire", () => {
  let stateDir: string;
  let store: FileContentStore;
  let proxy: LoopbackProxy | undefined;
  let client: RegistryClient | undefined;
  let events: RegistryEvent[];

  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "kiln-registry-faults-"));
    store = await FileContentStore.open(stateDir);
    events = [];
  });
  afterEach(async () => {
    client?.close();
    client = undefined;
    await proxy?.close();
    proxy = undefined;
    await rm(stateDir, { recursive: true, force: true });
  });

  it("fails a pull whose blob a proxy altered with a digest mismatch naming registry, repository and digest", async () => {
    proxy = await startProxy(world.registry, {
      rewriteBody(req, body) {
        if (!req.url?.includes("/blobs/") || body.length === 0) return body;
        const flipped = Buffer.from(body);
        flipped[flipped.length >> 1]! ^= 0xff;
        return flipped;
      },
    });
    client = new RegistryClient({ dockerConfigDir: stateDir });
    const ref = parseImageRef(`${proxy.address}/busybox:latest`);
    // Manifests pass untouched; the config is a blob, so already the image resolution must fail.
    await assert.rejects(client.resolveImage(ref, parsePlatform("linux/amd64")), RegistryDigestMismatchError);
    const good = new RegistryClient({ dockerConfigDir: stateDir });
    const image = await good.resolveImage(parseImageRef(world.busybox), parsePlatform("linux/amd64"));
    good.close();
    const layer = image.manifest.layers[0]!;
    await assert.rejects(client.pullBlobToStore(store, ref, layer), (err: unknown) => {
      assert.ok(err instanceof RegistryDigestMismatchError);
      assert.equal(err.expected, layer.digest);
      assert.match(err.message, new RegExp(`registry ${proxy!.address}`));
      assert.match(err.message, new RegExp(`${proxy!.address}/busybox`));
      assert.ok(err.message.includes(layer.digest));
      return true;
    });
    assert.equal(await store.has(layer.digest), false);
    assert.deepEqual(await readdir(join(stateDir, "content", "ingest")), []);
  });

  it("retries a request that got 503 twice and then succeeds", async () => {
    let failures = 0;
    proxy = await startProxy(world.registry, {
      intercept(req, res) {
        if (req.url?.includes("/manifests/") && failures < 2) {
          failures++;
          res.writeHead(503, { "content-type": "text/plain" });
          res.end("try later");
          return true;
        }
        return false;
      },
    });
    client = new RegistryClient({
      dockerConfigDir: stateDir,
      retry: fastRetry,
      onEvent: (e) => events.push(e),
    });
    const desc = await client.resolve(parseImageRef(`${proxy.address}/busybox:latest`));
    assert.equal(desc.mediaType, MediaType.OciIndex);
    const retries = events.filter((e) => e.type === "retry");
    assert.deepEqual(
      retries.map((r) => [r.attempt, r.reason]),
      [
        [1, "HTTP 503"],
        [2, "HTTP 503"],
      ],
    );
    assert.equal(proxy.seen.filter((s) => s.includes("/manifests/")).length, 3);
  });

  it("gives up after the configured number of tries on a registry that keeps answering 503", async () => {
    proxy = await startProxy(world.registry, {
      intercept(_req, res) {
        res.writeHead(503);
        res.end();
        return true;
      },
    });
    client = new RegistryClient({
      dockerConfigDir: stateDir,
      retry: { ...fastRetry, attempts: 3 },
      onEvent: (e) => events.push(e),
    });
    await assert.rejects(client.resolve(parseImageRef(`${proxy.address}/busybox:latest`)), (err: unknown) => {
      assert.ok(err instanceof RegistryError);
      assert.equal(err.status, 503);
      assert.match(err.message, /HTTP 503/);
      return true;
    });
    // One /v2/ probe for the scheme, then three tries of the manifest request.
    assert.equal(proxy.seen.filter((s) => s.includes("/manifests/")).length, 3);
  });

  it("retries a connection the server resets and then succeeds", async () => {
    let resets = 0;
    proxy = await startProxy(world.registry, {
      intercept(req) {
        if (req.url?.includes("/manifests/") && resets < 1) {
          resets++;
          req.socket.destroy();
          return true;
        }
        return false;
      },
    });
    client = new RegistryClient({
      dockerConfigDir: stateDir,
      retry: fastRetry,
      onEvent: (e) => events.push(e),
    });
    const desc = await client.resolve(parseImageRef(`${proxy.address}/busybox:latest`));
    assert.match(desc.digest, /^sha256:/);
    assert.deepEqual(
      events.filter((e) => e.type === "retry").map((r) => r.reason),
      ["ECONNRESET"],
    );
  });

  it("does not retry a 4xx answer", async () => {
    proxy = await startProxy(world.registry);
    client = new RegistryClient({
      dockerConfigDir: stateDir,
      retry: fastRetry,
      onEvent: (e) => events.push(e),
    });
    await assert.rejects(client.resolve(parseImageRef(`${proxy.address}/busybox:missing`)), /not found/);
    assert.equal(events.filter((e) => e.type === "retry").length, 0);
  });

  it("retries a monolithic blob upload by reopening the source after a 503", async () => {
    let failed = false;
    proxy = await startProxy(world.registry, {
      intercept(req, res) {
        if (req.method === "PUT" && req.url?.includes("/blobs/uploads/") && !failed) {
          failed = true;
          req.resume();
          res.writeHead(503);
          res.end();
          return true;
        }
        return false;
      },
    });
    client = new RegistryClient({
      dockerConfigDir: stateDir,
      retry: fastRetry,
      onEvent: (e) => events.push(e),
    });
    const image = await writeRandomImage(store);
    const ref = parseImageRef(`${proxy.address}/${uniqueRepo("retry-put")}:v1`);
    let opened = 0;
    const result = await client.pushBlob(ref, image.layer, () => {
      opened++;
      return store.read(image.layer.digest);
    });
    assert.equal(result.outcome, "uploaded");
    assert.equal(opened, 2);
    const check = new RegistryClient({ dockerConfigDir: stateDir });
    const back: Buffer[] = [];
    for await (const c of await check.fetchBlob(
      { registry: world.registry, repository: ref.repository },
      image.layer,
    ))
      back.push(c as Buffer);
    check.close();
    assert.ok(Buffer.concat(back).equals(await store.readBytes(image.layer.digest)));
  });

  it("follows a redirect of a blob GET to another host and verifies what it gets there", async () => {
    proxy = await startProxy(world.registry, {
      intercept(req, res) {
        if (req.method === "GET" && req.url?.includes("/blobs/sha256:")) {
          res.writeHead(307, { location: `http://${world.registry}${req.url}` });
          res.end();
          return true;
        }
        return false;
      },
    });
    client = new RegistryClient({ dockerConfigDir: stateDir });
    const ref = parseImageRef(`${proxy.address}/busybox:latest`);
    const image = await client.resolveImage(ref, parsePlatform("linux/arm64"));
    const layer = image.manifest.layers[0]!;
    assert.equal((await client.pullBlobToStore(store, ref, layer)).fetched, true);
    assert.equal(await store.has(layer.digest), true);
    assert.ok(proxy.seen.some((s) => s === `GET /v2/busybox/blobs/${layer.digest}`));
  });

  it("falls back to plain HTTP for a loopback registry that does not speak TLS", async () => {
    client = new RegistryClient({ dockerConfigDir: stateDir });
    const desc = await client.resolve(parseImageRef(world.busybox));
    assert.match(desc.digest, /^sha256:/);
  });
});
