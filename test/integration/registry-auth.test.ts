import assert from "node:assert/strict";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { parseImageRef } from "../../src/oci/image-ref.js";
import { RegistryClient } from "../../src/registry/client.js";
import { RegistryAuthError, RegistryTlsError } from "../../src/registry/errors.js";
import { loadWorld, registryLoginConfig } from "../support/world.js";

const world = loadWorld();
const busyboxTls = () => parseImageRef(`${world.registryTls}/busybox:latest`);

describe("registry client: authentication and TLS", () => {
  let dir: string;
  let client: RegistryClient | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-registry-auth-"));
  });
  afterEach(async () => {
    client?.close();
    client = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  const writeConfig = async (config: unknown) => {
    await writeFile(join(dir, "config.json"), JSON.stringify(config));
  };

  it("fails with a 401 error saying credentials were sent when the password is wrong", async () => {
    client = new RegistryClient({ dockerConfigDir: dir });
    client.setCredentials(world.registryTls, { username: world.registryUser, password: "wrong" });
    await assert.rejects(client.resolve(busyboxTls()), (err: unknown) => {
      assert.ok(err instanceof RegistryAuthError);
      assert.equal(err.status, 401);
      assert.equal(err.credentialsSent, true);
      assert.match(err.message, new RegExp(`registry ${world.registryTls} refused`));
      assert.match(err.message, /busybox:latest/);
      assert.match(err.message, /credentials were sent for user "kiln"/);
      return true;
    });
  });

  it("fails with an error saying no credentials were sent when it has none for the registry", async () => {
    client = new RegistryClient({ dockerConfigDir: dir });
    await assert.rejects(client.resolve(busyboxTls()), (err: unknown) => {
      assert.ok(err instanceof RegistryAuthError);
      assert.equal(err.status, 401);
      assert.equal(err.credentialsSent, false);
      assert.match(err.message, /no credentials were sent/);
      return true;
    });
  });

  it("uses the base64 auth entry of config.json in $DOCKER_CONFIG", async () => {
    await writeConfig(registryLoginConfig(world));
    const saved = process.env.DOCKER_CONFIG;
    process.env.DOCKER_CONFIG = dir;
    try {
      client = new RegistryClient();
    } finally {
      if (saved === undefined) delete process.env.DOCKER_CONFIG;
      else process.env.DOCKER_CONFIG = saved;
    }
    const desc = await client.resolve(busyboxTls());
    assert.match(desc.digest, /^sha256:/);
  });

  it("uses a username/password auths entry keyed by https://host", async () => {
    await writeConfig({
      auths: {
        [`https://${world.registryTls}`]: { username: world.registryUser, password: world.registryPassword },
      },
    });
    client = new RegistryClient({ dockerConfigDir: dir });
    const desc = await client.resolve(busyboxTls());
    assert.match(desc.digest, /^sha256:/);
  });

  for (const via of ["credHelpers", "credsStore"] as const) {
    it(`asks the docker-credential-kilntest helper on PATH (via ${via}) with the host on stdin`, async () => {
      const bin = join(dir, "bin");
      await mkdir(bin);
      const stdinLog = join(dir, "helper-stdin");
      await writeFile(
        join(bin, "docker-credential-kilntest"),
        [
          "#!/bin/sh",
          '[ "$1" = get ] || exit 1',
          `cat > ${stdinLog}`,
          `printf '{"ServerURL":"%s","Username":"${world.registryUser}","Secret":"${world.registryPassword}"}' "$(cat ${stdinLog})"`,
          "",
        ].join("\n"),
        { mode: 0o755 },
      );
      await writeConfig(
        via === "credHelpers"
          ? { credHelpers: { [world.registryTls]: "kilntest" } }
          : { credsStore: "kilntest" },
      );
      const savedPath = process.env.PATH;
      process.env.PATH = `${bin}${delimiter}${savedPath}`;
      try {
        client = new RegistryClient({ dockerConfigDir: dir });
        const desc = await client.resolve(busyboxTls());
        assert.match(desc.digest, /^sha256:/);
      } finally {
        process.env.PATH = savedPath;
      }
      assert.equal(await readFile(stdinLog, "utf8"), world.registryTls);
    });
  }

  it("names the helper when a configured credential helper is not installed", async () => {
    await writeConfig({ credsStore: "kiln-missing-helper" });
    client = new RegistryClient({ dockerConfigDir: dir });
    await assert.rejects(client.resolve(busyboxTls()), /docker-credential-kiln-missing-helper/);
  });

  it("trusts the CA it finds in the certs directory for host:port", async () => {
    const hostDir = join(dir, "certs.d", world.registryTls);
    await mkdir(hostDir, { recursive: true });
    await copyFile(world.caFile, join(hostDir, "ca.crt"));
    client = new RegistryClient({ dockerConfigDir: dir, certsDirs: [join(dir, "certs.d")] });
    client.setCredentials(world.registryTls, {
      username: world.registryUser,
      password: world.registryPassword,
    });
    const desc = await client.resolve(busyboxTls());
    assert.match(desc.digest, /^sha256:/);
  });

  it("refuses the registry's certificate without its CA and says where to put it", async () => {
    client = new RegistryClient({ dockerConfigDir: dir, certsDirs: [join(dir, "empty-certs.d")] });
    client.setCredentials(world.registryTls, {
      username: world.registryUser,
      password: world.registryPassword,
    });
    await assert.rejects(client.resolve(busyboxTls()), (err: unknown) => {
      assert.ok(err instanceof RegistryTlsError);
      assert.match(err.message, new RegExp(`certificate of ${world.registryTls} could not be verified`));
      assert.ok(err.message.includes(join(dir, "empty-certs.d", world.registryTls, "ca.crt")));
      return true;
    });
  });

  it("talks to an insecure-listed TLS registry without verifying its certificate", async () => {
    client = new RegistryClient({
      dockerConfigDir: dir,
      certsDirs: [join(dir, "empty-certs.d")],
      insecureRegistries: [world.registryTls],
    });
    client.setCredentials(world.registryTls, {
      username: world.registryUser,
      password: world.registryPassword,
    });
    const desc = await client.resolve(busyboxTls());
    assert.match(desc.digest, /^sha256:/);
  });
});
