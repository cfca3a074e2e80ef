// Bearer-token authentication against a real distribution registry configured with `auth: token`,
// whose token server is a small loopback HTTP server here that signs JWTs with a throwaway key.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes, sign } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileContentStore } from "../../src/content/store.js";
import { parseImageRef } from "../../src/oci/image-ref.js";
import { parsePlatform } from "../../src/oci/platform.js";
import { MediaType } from "../../src/oci/spec.js";
import { RegistryClient } from "../../src/registry/client.js";
import { RegistryAuthError } from "../../src/registry/errors.js";
import type { RegistryEvent } from "../../src/registry/events.js";
import { uniqueRepo, writeRandomImage } from "./registry-support.js";

const SERVICE = "kiln-token-test";
const ISSUER = "kiln-token-issuer";
const USER = "tokuser";
const PASSWORD = "tokpass";

interface TokenRequest {
  readonly user?: string;
  readonly scopes: string[];
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

describe("registry client: Bearer tokens (distribution with token auth)", function () {
  this.timeout(60_000);
  let dir: string;
  let registry: ChildProcess | undefined;
  let tokenServer: http.Server;
  let registryHost: string;
  let tokenRequests: TokenRequest[];
  /** How many of the next tokens to issue already expired (so the registry refuses them). */
  let expiredTokensToIssue = 0;
  let store: FileContentStore;
  let client: RegistryClient | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-registry-token-"));
    const openssl = "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=kiln-token-signer".split(" ");
    openssl.push("-keyout", join(dir, "signer.key"), "-out", join(dir, "signer.crt"));
    execFileSync("openssl", openssl, { stdio: "ignore" });
    const keyPem = await readFile(join(dir, "signer.key"), "utf8");
    const certPem = await readFile(join(dir, "signer.crt"), "utf8");
    const certDer = certPem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");

    tokenServer = http.createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      const scopes = url.searchParams.getAll("scope");
      let user: string | undefined;
      const auth = req.headers.authorization;
      if (auth?.startsWith("Basic ")) {
        const [u, p] = Buffer.from(auth.slice(6), "base64").toString().split(":");
        if (u !== USER || p !== PASSWORD) {
          tokenRequests.push({ user: u, scopes });
          res.writeHead(401, { "content-type": "application/json" });
          res.end(JSON.stringify({ details: "incorrect username or password" }));
          return;
        }
        user = u;
      }
      tokenRequests.push({ user, scopes });
      // Anonymous callers may pull; the known user may do what they asked.
      const access = scopes.map((s) => {
        const [type, name, actions] = s.split(":");
        const granted = (actions ?? "").split(",").filter((a) => user || a === "pull");
        return { type, name, actions: granted };
      });
      const now = Math.floor(Date.now() / 1000);
      const expired = expiredTokensToIssue > 0;
      if (expired) expiredTokensToIssue--;
      const claims = {
        iss: ISSUER,
        sub: user ?? "",
        aud: SERVICE,
        exp: expired ? now - 3600 : now + 300,
        nbf: now - 3700,
        iat: now - 3700,
        jti: randomBytes(8).toString("hex"),
        access,
      };
      const header = { typ: "JWT", alg: "RS256", x5c: [certDer] };
      const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
      const signature = sign("sha256", Buffer.from(signingInput), keyPem);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ token: `${signingInput}.${b64url(signature)}`, expires_in: 300 }));
    });
    await new Promise<void>((r) => tokenServer.listen(0, "127.0.0.1", r));
    const tokenPort = (tokenServer.address() as AddressInfo).port;

    const port = await freePort();
    registryHost = `127.0.0.1:${port}`;
    await writeFile(
      join(dir, "config.yml"),
      [
        "version: 0.1",
        "log: { level: warn }",
        `storage: { filesystem: { rootdirectory: ${join(dir, "data")} } }`,
        `http: { addr: "${registryHost}", secret: ${randomBytes(8).toString("hex")} }`,
        "auth:",
        "  token:",
        `    realm: http://127.0.0.1:${tokenPort}/token`,
        `    service: ${SERVICE}`,
        `    issuer: ${ISSUER}`,
        `    rootcertbundle: ${join(dir, "signer.crt")}`,
        "",
      ].join("\n"),
    );
    registry = spawn("docker-registry", ["serve", join(dir, "config.yml")], { stdio: "ignore" });
    let status = 0;
    for (let i = 0; i < 80 && status !== 401; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = await fetch(`http://${registryHost}/v2/`).then(
        (r) => r.status,
        () => 0,
      );
    }
    assert.equal(status, 401, `docker-registry with token auth did not come up on ${registryHost}`);
    store = await FileContentStore.open(dir);
  });

  after(async () => {
    registry?.kill();
    await new Promise((r) => tokenServer.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    tokenRequests = [];
    expiredTokensToIssue = 0;
  });
  afterEach(() => {
    client?.close();
    client = undefined;
  });

  const newClient = (events?: RegistryEvent[]) => {
    client = new RegistryClient({
      dockerConfigDir: dir,
      onEvent: events ? (e) => events.push(e) : undefined,
    });
    return client;
  };

  it("pushes with a token obtained with the user's credentials for pull,push scope", async () => {
    const c = newClient();
    c.setCredentials(registryHost, { username: USER, password: PASSWORD });
    const image = await writeRandomImage(store);
    const ref = parseImageRef(`${registryHost}/${uniqueRepo("tok")}:v1`);
    await c.pushImage(ref, { bytes: image.manifestBytes, mediaType: MediaType.OciManifest, store });
    assert.ok(tokenRequests.length >= 1);
    for (const t of tokenRequests) {
      assert.equal(t.user, USER);
      assert.deepEqual(t.scopes, [`repository:${ref.repository}:pull,push`]);
    }
    const image2 = await c.resolveImage(ref, parsePlatform("linux/amd64"));
    assert.equal(image2.manifest.layers[0]!.digest, image.layer.digest);
  });

  it("reuses a cached token for the same scope instead of asking the token server again", async () => {
    const c = newClient();
    c.setCredentials(registryHost, { username: USER, password: PASSWORD });
    const image = await writeRandomImage(store);
    const ref = parseImageRef(`${registryHost}/${uniqueRepo("cache")}:v1`);
    await c.pushImage(ref, { bytes: image.manifestBytes, mediaType: MediaType.OciManifest, store });
    tokenRequests = [];
    await c.resolve(ref);
    await c.resolve(ref);
    await c.fetchManifest(ref);
    assert.deepEqual(tokenRequests, [{ user: USER, scopes: [`repository:${ref.repository}:pull`] }]);
  });

  it("asks for pull scope on the source repository when mounting, and the mount answers 201", async () => {
    const events: RegistryEvent[] = [];
    const c = newClient(events);
    c.setCredentials(registryHost, { username: USER, password: PASSWORD });
    const image = await writeRandomImage(store);
    const from = parseImageRef(`${registryHost}/${uniqueRepo("from")}:v1`);
    const to = parseImageRef(`${registryHost}/${uniqueRepo("to")}:v1`);
    await c.pushImage(from, { bytes: image.manifestBytes, mediaType: MediaType.OciManifest, store });
    tokenRequests = [];
    await c.pushImage(
      to,
      { bytes: image.manifestBytes, mediaType: MediaType.OciManifest, store },
      { mountFrom: [from.repository] },
    );
    assert.ok(
      tokenRequests.some(
        (t) =>
          t.scopes.includes(`repository:${to.repository}:pull,push`) &&
          t.scopes.includes(`repository:${from.repository}:pull`),
      ),
    );
    const mounts = events.filter((e) => e.type === "blob-mount");
    assert.equal(mounts.length, 2);
    assert.ok(mounts.every((m) => m.status === 201));
  });

  it("pulls anonymously with a token fetched without credentials", async () => {
    const seeding = newClient();
    seeding.setCredentials(registryHost, { username: USER, password: PASSWORD });
    const image = await writeRandomImage(store);
    const ref = parseImageRef(`${registryHost}/${uniqueRepo("anon")}:v1`);
    await seeding.pushImage(ref, { bytes: image.manifestBytes, mediaType: MediaType.OciManifest, store });
    seeding.close();
    tokenRequests = [];
    const c = newClient();
    const desc = await c.resolve(ref);
    assert.equal(desc.mediaType, MediaType.OciManifest);
    assert.deepEqual(tokenRequests, [{ user: undefined, scopes: [`repository:${ref.repository}:pull`] }]);
  });

  it("fails an anonymous push with an error saying no credentials were sent", async () => {
    const c = newClient();
    const image = await writeRandomImage(store);
    const ref = parseImageRef(`${registryHost}/${uniqueRepo("anon-push")}:v1`);
    await assert.rejects(
      c.pushImage(ref, { bytes: image.manifestBytes, mediaType: MediaType.OciManifest, store }),
      (err: unknown) => {
        assert.ok(err instanceof RegistryAuthError);
        assert.equal(err.credentialsSent, false);
        assert.match(err.message, new RegExp(`registry ${registryHost} refused`));
        assert.match(err.message, /no credentials were sent/);
        return true;
      },
    );
  });

  it("fails without a second token when a token fetched for the challenge is refused", async () => {
    const c = newClient();
    c.setCredentials(registryHost, { username: USER, password: PASSWORD });
    expiredTokensToIssue = 10;
    await assert.rejects(
      c.resolve(parseImageRef(`${registryHost}/never/there:v1`)),
      (err: unknown) => err instanceof RegistryAuthError && err.status === 401 && err.credentialsSent,
    );
    assert.equal(tokenRequests.length, 1);
  });

  it("reports a token server's refusal of wrong credentials, saying they were sent", async () => {
    const c = newClient();
    c.setCredentials(registryHost, { username: USER, password: "wrong" });
    await assert.rejects(c.resolve(parseImageRef(`${registryHost}/some/repo:v1`)), (err: unknown) => {
      assert.ok(err instanceof RegistryAuthError);
      assert.equal(err.credentialsSent, true);
      assert.match(err.message, /token server/);
      assert.match(err.message, /credentials were sent for user "tokuser"/);
      return true;
    });
  });

  it("fetches a fresh token once when the registry refuses a token, then succeeds", async () => {
    const seeding = newClient();
    seeding.setCredentials(registryHost, { username: USER, password: PASSWORD });
    const image = await writeRandomImage(store);
    const ref = parseImageRef(`${registryHost}/${uniqueRepo("refresh")}:v1`);
    await seeding.pushImage(ref, { bytes: image.manifestBytes, mediaType: MediaType.OciManifest, store });
    seeding.close();
    const c = newClient();
    c.setCredentials(registryHost, { username: USER, password: PASSWORD });
    await c.resolve(ref); // learns the challenge and caches a good token
    tokenRequests = [];
    // The cached token is still good, so force a refusal: a new scope whose first token is expired.
    expiredTokensToIssue = 1;
    const other = parseImageRef(`${registryHost}/${uniqueRepo("refresh-other")}:v1`);
    await c.pushImage(other, { bytes: image.manifestBytes, mediaType: MediaType.OciManifest, store });
    assert.equal(tokenRequests.length, 2);
  });

  it("gives up with an authorisation error when the refreshed token is refused too", async () => {
    const c = newClient();
    c.setCredentials(registryHost, { username: USER, password: PASSWORD });
    // Learn the challenge first, so the next request goes out with a token straight away.
    await assert.rejects(c.resolve(parseImageRef(`${registryHost}/not/pushed:v1`)), /not found/);
    tokenRequests = [];
    expiredTokensToIssue = 10;
    await assert.rejects(
      c.resolve(parseImageRef(`${registryHost}/never/there:v1`)),
      (err: unknown) => err instanceof RegistryAuthError && err.status === 401 && err.credentialsSent,
    );
    // A token → refused → one fresh token → refused → stop.
    assert.equal(tokenRequests.length, 2);
  });
});
