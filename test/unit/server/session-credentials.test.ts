// Registry credentials lent by the client over a build's session: the wire round trip (client
// responder ↔ engine session, through the service's own protobuf codecs), the lookup order on the
// engine (client first, then the engine host's own), and the fingerprints that keep one identity's
// resolutions from another.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newBuildRequest } from "../../../src/client/build-request.js";
import type { RegistryCredentials } from "../../../src/registry/credentials.js";
import { clientFirstCredentials, credentialsFingerprint } from "../../../src/registry/session-credentials.js";
import {
  type BuildClientMessage,
  type BuildServerMessage,
  engineServiceClient,
} from "../../../src/server/engine-proto.js";
import { describeSession, SessionResponder } from "../../../src/session/grpc-client-session.js";
import { RemoteSession } from "../../../src/session/grpc-engine-session.js";
import { LocalSession } from "../../../src/session/local-session.js";

const build = () => engineServiceClient().service.Build!;
const toClient = (m: BuildServerMessage) =>
  build().responseDeserialize(build().responseSerialize(m)) as BuildServerMessage;
const toEngine = (m: BuildClientMessage) =>
  build().requestDeserialize(build().requestSerialize(m)) as BuildClientMessage;

/** A client session and the engine's view of it, joined through encoded messages. */
function joined(configDir: string): { engine: RemoteSession; toEngineLog: BuildClientMessage[] } {
  const request = newBuildRequest(configDir, {});
  const client = new LocalSession({ request, env: { PATH: process.env.PATH }, dockerConfigDir: configDir });
  const toEngineLog: BuildClientMessage[] = [];
  let engine!: RemoteSession;
  const responder = new SessionResponder(client, {
    send: (m) => {
      const decoded = toEngine(m);
      toEngineLog.push(decoded);
      engine.handle(decoded);
      return true;
    },
    drained: async () => {},
  });
  const info = toEngine({
    start: { requestJson: Buffer.from("{}"), session: describeSession(client, request) },
  });
  assert.ok("start" in info);
  engine = new RemoteSession(info.start.session, {
    send: (m) => void responder.handle(toClient(m)),
    holdInput: () => () => {},
  });
  return { engine, toEngineLog };
}

describe("registry credentials over the session", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-session-creds-"));
    await writeFile(
      join(dir, "config.json"),
      JSON.stringify({
        auths: {
          "registry.example:5443": { auth: Buffer.from("alice:s3cret:with:colons").toString("base64") },
          "token.example": { identitytoken: "refresh-me" },
          "empty.example": { username: "bob", password: "" },
        },
      }),
    );
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("carries the client's config.json credentials to the engine, host by host", async () => {
    const { engine } = joined(dir);
    assert.deepEqual(await engine.registryCredentials("registry.example:5443"), {
      username: "alice",
      password: "s3cret:with:colons",
    });
    assert.deepEqual(await engine.registryCredentials("token.example"), { identityToken: "refresh-me" });
    // An empty password is a password: presence survives the wire.
    assert.deepEqual(await engine.registryCredentials("empty.example"), { username: "bob", password: "" });
    assert.equal(await engine.registryCredentials("other.example"), undefined);
  });

  it("reports a broken client config as an error naming the registry, not a secret", async () => {
    await writeFile(join(dir, "config.json"), "{ not json");
    const { engine } = joined(dir);
    await assert.rejects(engine.registryCredentials("registry.example:5443"), (err: Error) => {
      assert.match(
        err.message,
        /registry credentials for registry\.example:5443: .*config\.json is not valid JSON/,
      );
      return true;
    });
  });

  it("does not ask a client that did not offer credentials (an older client never answers)", async () => {
    const sent: BuildServerMessage[] = [];
    const session = new RemoteSession(
      { id: "s", sharedKeys: {}, sshIds: [] },
      { send: (m) => sent.push(m), holdInput: () => () => {} },
    );
    assert.equal(await session.registryCredentials("registry.example"), undefined);
    assert.equal(sent.length, 0);
  });

  it("fails a pending question when the build stream goes away", async () => {
    const session = new RemoteSession(
      { id: "s", sharedKeys: {}, sshIds: [], registryCredentials: true },
      { send: () => {}, holdInput: () => () => {} },
    );
    const asked = session.registryCredentials("registry.example");
    session.close(new Error("stream broke"));
    await assert.rejects(asked, /stream broke/);
  });
});

describe("the engine's credential lookup for a build", () => {
  const alice: RegistryCredentials = { username: "alice", password: "a" };
  const host: RegistryCredentials = { username: "engine", password: "e" };

  it("asks the client first, then the engine host, each once per registry", async () => {
    const asked: string[] = [];
    const lookup = clientFirstCredentials(
      async (r) => {
        asked.push(`client ${r}`);
        return r === "mine.example" ? alice : undefined;
      },
      async (r) => {
        asked.push(`host ${r}`);
        return host;
      },
    );
    assert.deepEqual(await lookup("mine.example"), alice);
    assert.deepEqual(await lookup("other.example"), host);
    assert.deepEqual(await lookup("mine.example"), alice);
    assert.deepEqual(asked, ["client mine.example", "client other.example", "host other.example"]);
  });

  it("says whose credentials failed without repeating them", async () => {
    const lookup = clientFirstCredentials(
      async () => {
        throw new Error("credential helper docker-credential-x failed");
      },
      async () => host,
    );
    await assert.rejects(
      lookup("r.example"),
      /^Error: the client's credentials for registry r\.example: credential helper/,
    );
  });

  it("fingerprints identities apart without containing the secret", () => {
    const a = credentialsFingerprint("r", alice);
    assert.equal(a, credentialsFingerprint("r", { ...alice }));
    assert.notEqual(a, credentialsFingerprint("r", { ...alice, password: "other" }));
    assert.notEqual(a, credentialsFingerprint("r2", alice));
    assert.equal(credentialsFingerprint("r", undefined), "anonymous");
    assert.doesNotMatch(a, /alice/);
  });
});
