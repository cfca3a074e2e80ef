// Registry credentials from the build's session with the engine in process (the embedded
// builder's arrangement): the engine host's own Docker config has no login for the HTTPS registry,
// the client's has; pulls and pushes of that client's builds use it, other clients' do not.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newBuildRequest } from "../../src/client/build-request.js";
import { type Engine, openEngine } from "../../src/engine/engine.js";
import { LocalSession } from "../../src/session/local-session.js";
import { loadWorld, registryLoginConfig } from "../support/world.js";

const world = loadWorld();

describe("registry credentials from the session, engine in process (real HTTPS registry)", function () {
  this.timeout(180_000);
  let dir: string;
  let engine: Engine;
  let clientConfig: string;
  let anonymousConfig: string;
  let ctx: string;
  const ref = `${world.registryTls}/kiln-session-creds-${randomBytes(3).toString("hex")}:1`;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-session-creds-"));
    clientConfig = join(dir, "client-docker-config");
    anonymousConfig = join(dir, "anonymous-docker-config");
    await mkdir(clientConfig);
    await mkdir(anonymousConfig);
    await writeFile(join(clientConfig, "config.json"), JSON.stringify(registryLoginConfig(world)));
    // The engine reads its host's config from $DOCKER_CONFIG when it opens: point it at nothing.
    const saved = process.env.DOCKER_CONFIG;
    process.env.DOCKER_CONFIG = anonymousConfig;
    try {
      engine = await openEngine({ stateDir: join(dir, "state") });
    } finally {
      if (saved === undefined) delete process.env.DOCKER_CONFIG;
      else process.env.DOCKER_CONFIG = saved;
    }
    ctx = join(dir, "ctx");
    await mkdir(ctx);
  });
  after(async () => {
    await engine?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const build = (dockerConfigDir: string, push: boolean) => {
    const dockerfile = `FROM ${world.busyboxTls}\nRUN echo lent > /lent\n`;
    const req = newBuildRequest(ctx, {
      dockerfileText: dockerfile,
      outputs: push
        ? [{ type: "image", names: [ref], push: true, attrs: {} }]
        : [{ type: "local", dest: join(dir, "out"), attrs: {} }],
    });
    return engine.build(req, new LocalSession({ request: req, dockerConfigDir }), {});
  };

  it("pulls a private base image and pushes the result with the client's login", async () => {
    await build(clientConfig, true);
    const inspected = JSON.parse(
      execFileSync(
        "skopeo",
        [
          "inspect",
          "--creds",
          `${world.registryUser}:${world.registryPassword}`,
          "--cert-dir",
          `/etc/docker/certs.d/${world.registryTls}`,
          `docker://${ref}`,
        ],
        { encoding: "utf8" },
      ),
    );
    assert.match(inspected.Digest, /^sha256:/);
  });

  it("does not lend one client's login (or what it resolved) to a client without one", async () => {
    await assert.rejects(build(anonymousConfig, false), /401 Unauthorized.*no credentials were sent/);
  });
});
