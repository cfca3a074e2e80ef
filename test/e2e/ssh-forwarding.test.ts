// SSH agent forwarding through `docker kiln build --ssh`, as a user runs it, on the default
// builder and on a docker-container builder (host networking, so its RUN steps reach 127.0.0.1):
// RUN --mount=type=ssh steps run the host's real ssh client against a real sshd that accepts only
// a generated key, held by a real ssh-agent or read from a key file by the CLI.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { containerName, volumeName } from "../../drivers/docker-container/driver.js";
import { DOCKER, DOCKER_CLI, type DockerKiln, installDockerKiln } from "../support/docker-kiln.js";
import { copyHostSshClient, SshAgent, sshLoginCommand, TestSshd } from "../support/sshd.js";
import { loadWorld } from "../support/world.js";

const world = loadWorld();

describe("RUN --mount=type=ssh through `docker kiln build --ssh` (real ssh, sshd and ssh-agent)", function () {
  this.timeout(300_000);
  const id = randomBytes(3).toString("hex");
  const containerBuilder = `kilne2essh${id}`;
  let dir: string;
  let ctx: string;
  let kiln: DockerKiln;
  let sshd: TestSshd;
  let agent: SshAgent;
  let run = 0;

  before(async function () {
    this.timeout(300_000);
    dir = mkdtempSync(join(tmpdir(), "kiln-e2e-ssh-"));
    kiln = installDockerKiln(dir);
    ctx = join(dir, "ctx");
    await copyHostSshClient(join(ctx, "ssh-client"));
    sshd = await TestSshd.start();
    agent = await SshAgent.start([sshd.clientKey]);
    kiln.ok([
      "create",
      "--name",
      containerBuilder,
      "--driver",
      "docker-container",
      "--driver-opt",
      "network=host",
      "--bootstrap",
    ]);
  });

  after(async () => {
    spawnSync(DOCKER, ["rm", "-f", containerName(`${containerBuilder}0`)], { stdio: "ignore" });
    spawnSync(DOCKER, ["volume", "rm", "-f", volumeName(`${containerBuilder}0`)], { stdio: "ignore" });
    await agent?.stop();
    await sshd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * `docker kiln build` of a stage with the host's ssh client whose RUN step (with `mount`) logs in
   * to sshd and keeps what the remote printed in /answer, exported to the client's disk.
   */
  function sshBuild(
    builderArgs: readonly string[],
    mount: string,
    flags: readonly string[],
    agentSocket?: string,
  ) {
    // A token of this run: the step is never a cache hit, and the answer comes from this login.
    const token = `ok-${id}-${run++}`;
    writeFileSync(
      join(ctx, "Dockerfile"),
      [
        `FROM ${world.busybox}`,
        "COPY ssh-client/ /",
        `RUN ${mount} ${sshLoginCommand(sshd, `echo ${token}`)} > /answer`,
        "",
      ].join("\n"),
    );
    const out = join(dir, `out-${token}`);
    const env = { ...kiln.env };
    delete env.SSH_AUTH_SOCK;
    if (agentSocket) env.SSH_AUTH_SOCK = agentSocket;
    const r = spawnSync(
      DOCKER_CLI,
      ["kiln", ...builderArgs, "build", "--progress=plain", ...flags, "-o", `type=local,dest=${out}`, ctx],
      { env, encoding: "utf8" },
    );
    const answer = r.status === 0 ? readFileSync(join(out, "answer"), "utf8") : undefined;
    return { status: r.status, output: `${r.stdout}${r.stderr}`, answer, token };
  }

  const builders: readonly [string, () => string[]][] = [
    ["the default builder", () => []],
    ["a docker-container builder", () => ["--builder", containerBuilder]],
  ];
  for (const [name, builderArgs] of builders) {
    describe(name, () => {
      it("logs in with the agent from SSH_AUTH_SOCK for --ssh default", () => {
        const b = sshBuild(builderArgs(), "--mount=type=ssh", ["--ssh", "default"], agent.socket);
        assert.equal(b.status, 0, b.output);
        assert.equal(b.answer, `${b.token}\n`);
      });

      it("signs with a key file the CLI loads for --ssh ID=KEYFILE, with no agent running", () => {
        const b = sshBuild(builderArgs(), "--mount=type=ssh,id=deploy", [
          "--ssh",
          `deploy=${sshd.clientKey}`,
        ]);
        assert.equal(b.status, 0, b.output);
        assert.equal(b.answer, `${b.token}\n`);
      });

      it("fails the step's login without --ssh, with ssh's refusal in the output", () => {
        const b = sshBuild(builderArgs(), "--mount=type=ssh", [], agent.socket);
        assert.equal(b.status, 1, b.output);
        assert.match(b.output, /Permission denied \(publickey\)/);
      });

      it("fails a required=true ssh mount whose id --ssh did not give, naming the id", () => {
        const b = sshBuild(
          builderArgs(),
          "--mount=type=ssh,id=deploy,required=true",
          ["--ssh", "default"],
          agent.socket,
        );
        assert.equal(b.status, 1, b.output);
        assert.match(b.output, /no SSH key "deploy" forwarded from the client \(use --ssh deploy\)/);
      });
    });
  }

  // Mocha runs a suite's own tests before its nested suites: these live in one that comes last.
  describe("the client's checks and cleanup", () => {
    it("refuses an --ssh key file that does not exist before building, naming it", () => {
      const b = sshBuild([], "--mount=type=ssh", ["--ssh", "default=/nonexistent/id_ed25519"]);
      assert.equal(b.status, 1, b.output);
      assert.match(b.output, /--ssh default=\/nonexistent\/id_ed25519: cannot read it/);
    });

    it("removes the docker-container builder with its container and state volume", () => {
      kiln.ok(["rm", containerBuilder]);
      const node = `${containerBuilder}0`;
      assert.notEqual(spawnSync(DOCKER, ["container", "inspect", containerName(node)]).status, 0);
      assert.notEqual(spawnSync(DOCKER, ["volume", "inspect", volumeName(node)]).status, 0);
    });
  });
});
