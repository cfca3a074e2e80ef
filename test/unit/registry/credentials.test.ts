import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { authKeyHost, credentialKey, DockerConfigCredentials } from "../../../src/registry/credentials.js";

describe("Docker config credentials", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-creds-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const withConfig = async (config: unknown) => {
    await writeFile(join(dir, "config.json"), JSON.stringify(config));
    return new DockerConfigCredentials(dir).lookup;
  };
  const b64 = (s: string) => Buffer.from(s).toString("base64");

  it("decodes the base64 auth of an exact host:port entry", async () => {
    const lookup = await withConfig({ auths: { "reg.example:5000": { auth: b64("alice:s3cr:et") } } });
    assert.deepEqual(await lookup("reg.example:5000"), { username: "alice", password: "s3cr:et" });
  });

  it("finds an entry keyed by a URL with scheme and path", async () => {
    const lookup = await withConfig({ auths: { "https://reg.example/v1/": { auth: b64("bob:pw") } } });
    assert.deepEqual(await lookup("reg.example"), { username: "bob", password: "pw" });
  });

  it("does not use another port's entry for a host", async () => {
    const lookup = await withConfig({ auths: { "reg.example:5000": { auth: b64("bob:pw") } } });
    assert.equal(await lookup("reg.example:5001"), undefined);
  });

  it("looks Docker Hub up under https://index.docker.io/v1/", async () => {
    const lookup = await withConfig({ auths: { "https://index.docker.io/v1/": { auth: b64("hub:pw") } } });
    assert.deepEqual(await lookup("docker.io"), { username: "hub", password: "pw" });
    assert.equal(credentialKey("docker.io"), "https://index.docker.io/v1/");
  });

  it("takes username and password fields when there is no auth field", async () => {
    const lookup = await withConfig({ auths: { "r.example": { username: "u", password: "p" } } });
    assert.deepEqual(await lookup("r.example"), { username: "u", password: "p" });
  });

  it("returns an identity token when the entry has one", async () => {
    const lookup = await withConfig({
      auths: { "r.example": { auth: b64("u:"), identitytoken: "refresh-me" } },
    });
    assert.deepEqual(await lookup("r.example"), { username: "u", identityToken: "refresh-me" });
  });

  it("answers anonymous when config.json does not exist", async () => {
    assert.equal(await new DockerConfigCredentials(join(dir, "nowhere")).lookup("r.example"), undefined);
  });

  it("rejects a config.json that is not JSON, naming the file", async () => {
    await writeFile(join(dir, "config.json"), "{ nope");
    await assert.rejects(
      new DockerConfigCredentials(dir).lookup("r.example"),
      new RegExp(join(dir, "config.json")),
    );
  });

  it("prefers a credHelpers entry over auths, and runs the helper with the host on stdin", async () => {
    const bin = join(dir, "bin");
    await mkdir(bin);
    await writeFile(
      join(bin, "docker-credential-unit"),
      '#!/bin/sh\nread host\nprintf \'{"ServerURL":"%s","Username":"from-%s","Secret":"pw"}\' "$host" "$host"\n',
      { mode: 0o755 },
    );
    await writeFile(
      join(dir, "config.json"),
      JSON.stringify({
        auths: { "r.example": { auth: b64("stale:pw") } },
        credHelpers: { "r.example": "unit" },
      }),
    );
    const lookup = new DockerConfigCredentials(dir, `${bin}:/usr/bin:/bin`).lookup;
    assert.deepEqual(await lookup("r.example"), { username: "from-r.example", password: "pw" });
  });

  it("treats a helper's <token> user as an identity token", async () => {
    const bin = join(dir, "bin");
    await mkdir(bin);
    await writeFile(
      join(bin, "docker-credential-tok"),
      '#!/bin/sh\ncat >/dev/null\necho \'{"Username":"<token>","Secret":"refresh"}\'\n',
      { mode: 0o755 },
    );
    await writeFile(join(dir, "config.json"), JSON.stringify({ credsStore: "tok" }));
    const lookup = new DockerConfigCredentials(dir, `${bin}:/usr/bin:/bin`).lookup;
    assert.deepEqual(await lookup("r.example"), { identityToken: "refresh" });
  });

  it("answers anonymous when the helper says the credentials are not found", async () => {
    const bin = join(dir, "bin");
    await mkdir(bin);
    await writeFile(
      join(bin, "docker-credential-none"),
      "#!/bin/sh\ncat >/dev/null\necho 'credentials not found in native keychain'\nexit 1\n",
      { mode: 0o755 },
    );
    await writeFile(join(dir, "config.json"), JSON.stringify({ credsStore: "none" }));
    assert.equal(
      await new DockerConfigCredentials(dir, `${bin}:/usr/bin:/bin`).lookup("r.example"),
      undefined,
    );
  });

  it("reduces auths keys to host[:port]", () => {
    assert.equal(authKeyHost("https://r.example:5000/v1/"), "r.example:5000");
    assert.equal(authKeyHost("http://r.example"), "r.example");
    assert.equal(authKeyHost("r.example"), "r.example");
  });
});
