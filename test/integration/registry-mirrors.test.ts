// Registry mirrors for pulls against the test world's registries: a name served only by its
// mirror, and mirrors that cannot be reached or refuse, after which the registry itself answers.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { parseImageRef } from "../../src/oci/image-ref.js";
import { RegistryClient } from "../../src/registry/client.js";
import { loadWorld } from "../support/world.js";

const world = loadWorld();

/** A loopback port nothing listens on (one that was just free). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe("registry mirrors (real registry)", () => {
  it("resolves a name whose registry does not exist through its mirror", async () => {
    const client = new RegistryClient({ mirrors: { "mirror-test.invalid": [world.registry] } });
    try {
      const desc = await client.resolve(parseImageRef("mirror-test.invalid/busybox:latest"));
      assert.equal(desc.digest, world.busyboxDigest);
    } finally {
      client.close();
    }
  });

  it("falls back to the registry when its mirror cannot be reached", async () => {
    const dead = `127.0.0.1:${await closedPort()}`;
    const client = new RegistryClient({ mirrors: { [world.registry]: [dead] }, retry: { attempts: 1 } });
    try {
      const desc = await client.resolve(parseImageRef(world.busybox));
      assert.equal(desc.digest, world.busyboxDigest);
    } finally {
      client.close();
    }
  });

  it("falls back to the registry when its mirror refuses the pull", async () => {
    // The HTTPS registry wants credentials this client does not have: a 401 from the mirror.
    const client = new RegistryClient({ mirrors: { [world.registry]: [world.registryTls] } });
    try {
      const desc = await client.resolve(parseImageRef(world.busybox));
      assert.equal(desc.digest, world.busyboxDigest);
    } finally {
      client.close();
    }
  });
});
