// SSH agent forwarding on the embedded engine, in-process: RUN --mount=type=ssh steps run the
// host's real ssh client against a real sshd on 127.0.0.1 that accepts only a generated key, held
// by a real ssh-agent or read from a key file by the client's session.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type BuildRequest, newBuildRequest } from "../../src/client/build-request.js";
import { type Engine, openEngine } from "../../src/engine/engine.js";
import { LocalSession } from "../../src/session/local-session.js";
import { connectSshAgent, loadSshAgentSource } from "../../src/session/ssh-agent-source.js";
import type { ProgressEvent } from "../../src/solver/progress.js";
import { copyHostSshClient, generateSshKey, SshAgent, sshLoginCommand, TestSshd } from "../support/sshd.js";
import { loadWorld } from "../support/world.js";

const execFileAsync = promisify(execFile);
const world = loadWorld();

describe("SSH agent forwarding to RUN steps (embedded engine, real ssh, sshd and ssh-agent)", function () {
  this.timeout(180_000);
  let state: string;
  let engine: Engine;
  let ctx: string;
  let sshd: TestSshd;
  let agent: SshAgent;
  let run = 0;

  before(async () => {
    state = await mkdtemp(join(tmpdir(), "kiln-ssh-state-"));
    ctx = await mkdtemp(join(tmpdir(), "kiln-ssh-ctx-"));
    await copyHostSshClient(join(ctx, "ssh-client"));
    sshd = await TestSshd.start({ clientKeyTypes: ["ed25519", "ecdsa", "rsa"] });
    agent = await SshAgent.start([sshd.clientKey]);
    engine = await openEngine({ stateDir: state });
  });
  after(async () => {
    await engine?.close();
    await agent?.stop();
    await sshd?.stop();
    await rm(state, { recursive: true, force: true });
    await rm(ctx, { recursive: true, force: true });
  });

  /**
   * Builds a stage with the host's ssh client whose RUN step logs in to sshd with `mount` and
   * writes what the remote printed to /answer; returns /answer and the step's log.
   */
  async function sshBuild(
    mount: string,
    given: Partial<BuildRequest>,
    env: NodeJS.ProcessEnv = {},
  ): Promise<{ answer: string; log: string }> {
    // A token of this run: the step is never a cache hit, and the answer comes from this login.
    const token = `ok-${process.pid}-${run++}`;
    const dockerfile = [
      `FROM ${world.busybox}`,
      "COPY ssh-client/ /",
      `RUN ${mount} ${sshLoginCommand(sshd, `echo ${token}`)} > /answer`,
      "",
    ].join("\n");
    await writeFile(join(ctx, "Dockerfile"), dockerfile);
    const out = join(ctx, `..${token}-out`);
    const req = newBuildRequest(ctx, {
      dockerfileText: dockerfile,
      outputs: [{ type: "local", dest: out, attrs: {} }],
      ...given,
    });
    const events: ProgressEvent[] = [];
    const logOf = () =>
      events
        .filter((e) => e.type === "log")
        .map((e) => e.data.toString())
        .join("");
    try {
      await engine.build(req, new LocalSession({ request: req, env }), { onProgress: (e) => events.push(e) });
      const answer = await readFile(join(out, "answer"), "utf8");
      assert.equal(answer, `${token}\n`, "the remote command's output is the step's");
      return { answer, log: logOf() };
    } catch (err) {
      (err as Error).message += `\n--- step log ---\n${logOf()}`;
      throw err;
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }

  it("logs in with the client's agent from SSH_AUTH_SOCK for --ssh default", async () => {
    await sshBuild(
      "--mount=type=ssh",
      { ssh: [{ id: "default", paths: [] }] },
      { SSH_AUTH_SOCK: agent.socket },
    );
  });

  it("forwards an agent socket given as --ssh ID=SOCKET to a mount with that id and its own target", async () => {
    await sshBuild(
      "--mount=type=ssh,id=deploy,target=/run/deploy.sock,required=true SSH_AUTH_SOCK=/run/deploy.sock",
      { ssh: [{ id: "deploy", paths: [agent.socket] }] },
    );
  });

  it("signs with a private key file the client loads for --ssh ID=KEYFILE, with no agent running", async () => {
    await sshBuild("--mount=type=ssh", { ssh: [{ id: "default", paths: [sshd.clientKey] }] });
  });

  it("fails the step's login without --ssh: no agent is forwarded", async () => {
    await assert.rejects(sshBuild("--mount=type=ssh", {}), (err: Error) => {
      assert.match(err.message, /did not complete successfully: exit code: 255/);
      assert.match(err.message, /Permission denied \(publickey\)/);
      return true;
    });
  });

  it("fails a step whose ssh mount is required=true when --ssh did not give its id, naming the id", async () => {
    await assert.rejects(
      sshBuild("--mount=type=ssh,id=deploy,required=true", {
        ssh: [{ id: "default", paths: [agent.socket] }],
      }),
      /no SSH key "deploy" forwarded from the client \(use --ssh deploy\)/,
    );
  });

  for (const type of ["ed25519", "ecdsa", "rsa"] as const) {
    it(`answers ssh's agent requests from a ${type} key file so that sshd accepts the login`, async () => {
      const source = loadSshAgentSource({ id: "default", paths: [sshd.clientKeys[type]!] });
      const dir = await mkdtemp(join(tmpdir(), "kiln-key-agent-"));
      const socket = join(dir, "agent.sock");
      const server: Server = createServer((conn) => {
        const relay = connectSshAgent("default", source, {});
        conn.pipe(relay).pipe(conn);
      });
      await new Promise<void>((resolve) => server.listen(socket, resolve));
      try {
        const [cmd, ...args] = sshLoginCommand(sshd, "echo signed").split(" ");
        const { stdout } = await execFileAsync(cmd!, ["-o", "IdentityFile=none", ...args], {
          env: { PATH: process.env.PATH, SSH_AUTH_SOCK: socket },
        });
        assert.equal(stdout, "signed\n");
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  it("refuses a passphrase-protected key file before the build, saying to add it to an agent", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kiln-enc-key-"));
    try {
      const key = await generateSshKey(join(dir, "id_ed25519"));
      await execFileAsync("ssh-keygen", ["-q", "-p", "-N", "secret phrase", "-f", key]);
      const req = newBuildRequest(ctx, { ssh: [{ id: "deploy", paths: [key] }] });
      assert.throws(
        () => new LocalSession({ request: req }),
        new RegExp(`--ssh deploy=${key}: the key is protected by a passphrase.*ssh-add ${key}`),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses an --ssh path that does not exist before the build, naming the path", () => {
    const req = newBuildRequest(ctx, { ssh: [{ id: "default", paths: ["/nonexistent/id_ed25519"] }] });
    assert.throws(
      () => new LocalSession({ request: req }),
      /--ssh default=\/nonexistent\/id_ed25519: cannot read it \(ENOENT/,
    );
  });

  it("refuses an --ssh id given both an agent socket and a key file", () => {
    const req = newBuildRequest(ctx, { ssh: [{ id: "default", paths: [agent.socket, sshd.clientKey] }] });
    assert.throws(
      () => new LocalSession({ request: req }),
      /--ssh default: give either one agent socket or key files, not both/,
    );
  });
});
