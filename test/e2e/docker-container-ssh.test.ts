// A docker-container builder on an ssh:// Docker host, as a user creates one with `docker kiln
// create --driver docker-container ssh://root@HOST:PORT`: a real sshd on 127.0.0.1 (key-only
// login through a real ssh-agent) in front of the local dockerd, reached by running `docker system
// dial-stdio` over ssh. Builds run in the engine container there and --load into that dockerd.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { containerName, volumeName } from "../../drivers/docker-container/driver.js";
import { DOCKER, DOCKER_CLI, type DockerKiln, installDockerKiln } from "../support/docker-kiln.js";
import { generateSshKey, SshAgent, TestSshd } from "../support/sshd.js";
import { loadWorld, registryLoginConfig } from "../support/world.js";

const world = loadWorld();

describe("docker-container builder on an ssh:// Docker host (real sshd, ssh-agent, dockerd)", function () {
  this.timeout(300_000);
  const id = randomBytes(3).toString("hex");
  const builder = `kilne2edcssh${id}`;
  const node = `${builder}0`;
  const loadTag = `kiln-e2e-dcssh-${id}:load`;
  let dir: string;
  let ctx: string;
  let kiln: DockerKiln;
  let sshd: TestSshd;
  let agent: SshAgent;
  /** A home whose ~/.ssh/known_hosts lists the sshd's host key, as after a first `ssh` to it. */
  let home: string;

  /** `docker kiln ARGS` with the given ssh environment, whatever its exit status. */
  const run = (args: readonly string[], ssh: { HOME: string; SSH_AUTH_SOCK?: string }) => {
    const env = { ...kiln.env, ...ssh };
    if (!ssh.SSH_AUTH_SOCK) delete env.SSH_AUTH_SOCK;
    const r = spawnSync(DOCKER_CLI, ["kiln", ...args], { env, encoding: "utf8" });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  };
  /** `docker kiln ARGS` as the user with the agent and known_hosts; fails the test unless it exits 0. */
  const ok = (args: readonly string[]) => {
    const r = run(args, { HOME: home, SSH_AUTH_SOCK: agent.socket });
    if (r.status !== 0) assert.fail(`docker kiln ${args.join(" ")} exited ${r.status}:\n${r.output}`);
    return r.output;
  };

  before(async function () {
    this.timeout(300_000);
    dir = mkdtempSync(join(tmpdir(), "kiln-e2e-dcssh-"));
    kiln = installDockerKiln(dir);
    sshd = await TestSshd.start();
    agent = await SshAgent.start([sshd.clientKey]);
    home = join(dir, "home");
    mkdirSync(join(home, ".ssh"), { recursive: true });
    writeFileSync(join(home, ".ssh", "known_hosts"), `${sshd.knownHostsLine}\n`);
    ctx = join(dir, "ctx");
    mkdirSync(ctx);
    writeFileSync(join(ctx, "input.txt"), "from the client\n");
    writeFileSync(
      join(ctx, "Dockerfile"),
      [
        `FROM ${world.busybox} AS build`,
        "COPY input.txt /src/input.txt",
        "RUN mkdir /out && cat /src/input.txt > /out/artifact && echo compiled over ssh >> /out/artifact",
        `FROM ${world.busybox}`,
        "COPY --from=build /out/artifact /artifact",
        "RUN wc -l < /artifact > /lines",
        'CMD ["cat", "/artifact", "/lines"]',
        "",
      ].join("\n"),
    );
  });

  after(async () => {
    spawnSync(DOCKER, ["rm", "-f", containerName(node)], { stdio: "ignore" });
    spawnSync(DOCKER, ["volume", "rm", "-f", volumeName(node)], { stdio: "ignore" });
    spawnSync(DOCKER, ["rmi", "-f", loadTag], { stdio: "ignore" });
    await agent?.stop();
    await sshd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("creates and bootstraps the builder through the ssh:// endpoint, logging in with the agent's key", () => {
    const out = ok([
      "create",
      "--name",
      builder,
      "--driver",
      "docker-container",
      "--driver-opt",
      "network=host",
      "--bootstrap",
      `ssh://root@127.0.0.1:${sshd.port}`,
    ]);
    assert.match(out, new RegExp(`^${builder}$`, "m"));
    const state = JSON.parse(
      execFileSync(DOCKER, ["container", "inspect", containerName(node)], { encoding: "utf8" }),
    )[0];
    assert.equal(state.State.Running, true);
    assert.match(
      ok(["ls"]),
      new RegExp(`${node}\\s+\\\\_ ssh://root@127\\.0\\.0\\.1:${sshd.port}\\s+running`),
    );
  });

  it("builds a multi-stage Dockerfile with RUN steps on the engine there and --load's it into dockerd", () => {
    const out = ok(["--builder", builder, "build", "--progress=plain", "--load", "-t", loadTag, ctx]);
    assert.match(out, /RUN mkdir \/out/);
    assert.equal(
      execFileSync(DOCKER, ["run", "--rm", loadTag], { encoding: "utf8" }),
      "from the client\ncompiled over ssh\n2\n",
    );
  });

  it("pushes to the HTTPS registry with the client's credentials, through the engine on the ssh:// host", () => {
    writeFileSync(join(kiln.env.DOCKER_CONFIG!, "config.json"), JSON.stringify(registryLoginConfig(world)));
    const ref = `${world.registryTls}/kiln-e2e-dcssh-${id}:1`;
    ok(["--builder", builder, "build", "--progress=plain", "--push", "-t", ref, ctx]);
    const inspected = JSON.parse(
      execFileSync(
        "skopeo",
        ["inspect", "--creds", `${world.registryUser}:${world.registryPassword}`, `docker://${ref}`],
        { encoding: "utf8" },
      ),
    );
    assert.equal(inspected.Architecture, "amd64");
  });

  it("exports type=oci and type=local to the client's disk from the engine on the ssh:// host", () => {
    const archive = join(dir, "image-oci.tar");
    const rootfs = join(dir, "rootfs");
    ok(["--builder", builder, "build", "-o", `type=oci,dest=${archive}`, ctx]);
    ok(["--builder", builder, "build", "-o", `type=local,dest=${rootfs}`, ctx]);
    assert.ok(statSync(archive).size > 0);
    assert.match(execFileSync("tar", ["-tf", archive], { encoding: "utf8" }), /^index\.json$/m);
    assert.equal(readFileSync(join(rootfs, "artifact"), "utf8"), "from the client\ncompiled over ssh\n");
  });

  it("refuses a host whose key is not in known_hosts, saying how to accept it", () => {
    const stranger = join(dir, "stranger-home");
    mkdirSync(stranger, { recursive: true });
    const r = run(["--builder", builder, "build", ctx], { HOME: stranger, SSH_AUTH_SOCK: agent.socket });
    assert.equal(r.status, 1, r.output);
    assert.match(r.output, /host key of ssh:\/\/root@\[127\.0\.0\.1\]:\d+ is not in .*known_hosts/);
    assert.match(r.output, new RegExp(`ssh -p ${sshd.port} root@127\\.0\\.0\\.1 true`));
  });

  it("fails with what to do when neither an agent nor a key in ~/.ssh is there to log in with", () => {
    const r = run(["--builder", builder, "build", ctx], { HOME: home });
    assert.equal(r.status, 1, r.output);
    assert.match(r.output, /no SSH credentials for ssh:\/\/root@\[127\.0\.0\.1\]:\d+: start ssh-agent/);
  });

  it("reports the login refused when the agent holds only a key the host does not accept", async () => {
    const other = await SshAgent.start([await generateSshKey(join(dir, "unknown_ed25519"))]);
    try {
      const r = run(["--builder", builder, "build", ctx], { HOME: home, SSH_AUTH_SOCK: other.socket });
      assert.equal(r.status, 1, r.output);
      assert.match(
        r.output,
        /ssh:\/\/root@\[127\.0\.0\.1\]:\d+ refused the login as root \(tried the agent at SSH_AUTH_SOCK\)/,
      );
    } finally {
      await other.stop();
    }
  });

  it("stops the engine container on the ssh:// host with `docker kiln stop`", () => {
    ok(["stop", builder]);
    const state = JSON.parse(
      execFileSync(DOCKER, ["container", "inspect", containerName(node)], { encoding: "utf8" }),
    )[0];
    assert.equal(state.State.Running, false);
  });

  it("removes the builder's container and state volume on the ssh:// host with `docker kiln rm`", () => {
    ok(["rm", builder]);
    assert.notEqual(spawnSync(DOCKER, ["container", "inspect", containerName(node)]).status, 0);
    assert.notEqual(spawnSync(DOCKER, ["volume", "inspect", volumeName(node)]).status, 0);
    assert.doesNotMatch(ok(["ls"]), new RegExp(builder));
  });
});
