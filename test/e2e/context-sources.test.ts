import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import {
  DOCKER,
  DOCKER_CLI,
  type DockerKiln,
  installDockerKiln,
  type KilndProcess,
  startKilnd,
} from "../support/docker-kiln.js";
import { GitHttpServer, GitSshServer, SshAgent, TestRepo } from "../support/git-server.js";
import { loadWorld } from "../support/world.js";

const world = loadWorld();

function writeTree(root: string, files: Record<string, string>): void {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
}

describe("kiln build from stdin and git contexts (the CLI as a user runs it)", function () {
  this.timeout(180_000);
  let dir: string;
  let kiln: DockerKiln;
  let repos: string;
  let http: GitHttpServer;
  let sshd: GitSshServer;
  let agent: SshAgent;
  let n = 0;
  const outDir = () => join(dir, `out-${n++}`);

  /**
   * `docker kiln ARGS` run asynchronously: the git servers live in this process, and a spawnSync
   * would stop them from answering the build.
   */
  const runAsync = (args: readonly string[], env: NodeJS.ProcessEnv = kiln.env) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(DOCKER_CLI, ["kiln", ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => {
        stdout += c.toString();
      });
      child.stderr.on("data", (c: Buffer) => {
        stderr += c.toString();
      });
      child.on("error", reject);
      child.on("close", (status) => resolve({ status, stdout, stderr }));
    });

  /** `docker kiln ARGS` with `input` on its stdin. */
  const withStdin = (args: readonly string[], input: Buffer | string) =>
    spawnSync(DOCKER_CLI, ["kiln", ...args], { env: kiln.env, input, encoding: "utf8", maxBuffer: 64 << 20 });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "kiln-e2e-contexts-"));
    kiln = installDockerKiln(dir);
    repos = join(dir, "repos");
    const repo = await TestRepo.init(join(repos, "repo.git"));
    await repo.write({
      README: "not in the subdir\n",
      "site/Dockerfile": "FROM scratch\nCOPY . /site/\n",
      "site/index.html": "main page\n",
    });
    await repo.commit("main");
    await repo.run(["checkout", "--quiet", "-b", "release"]);
    await repo.write({ "site/index.html": "release page\n" });
    await repo.commit("release");
    await repo.run(["checkout", "--quiet", "main"]);
    http = await GitHttpServer.start(repos);
    sshd = await GitSshServer.start();
    agent = await SshAgent.start([sshd.clientKey]);
  });
  after(async () => {
    await agent?.stop();
    await sshd?.stop();
    await http?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("builds `docker kiln build - < ctx.tar.gz` into an image whose files came from the archive", () => {
    const src = join(dir, "tar-src");
    writeTree(src, {
      Dockerfile: `FROM ${world.busybox}\nCOPY message.txt /message.txt\nCMD ["cat", "/message.txt"]\n`,
      "message.txt": "packed in a tarball\n",
    });
    const tarball = execFileSync("tar", ["-C", src, "-czf", "-", "."]);
    const tag = `kiln-e2e-stdin:${Date.now()}`;
    const r = withStdin(["build", "--progress=plain", "--load", "-t", tag, "-"], tarball);
    assert.equal(r.status, 0, r.stderr);
    try {
      assert.equal(execFileSync(DOCKER, ["run", "--rm", tag], { encoding: "utf8" }), "packed in a tarball\n");
    } finally {
      spawnSync(DOCKER, ["rmi", "-f", tag]);
    }
  });

  it("builds a Dockerfile piped to `docker kiln build -` with an empty context", () => {
    const dest = outDir();
    const r = withStdin(
      ["build", "--progress=plain", "-o", `type=local,dest=${dest}`, "-"],
      "FROM scratch\nCOPY . /ctx/\n",
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(join(dest, "ctx")), []);
  });

  it("still takes `-f -` as a Dockerfile on stdin for a directory context", () => {
    const ctx = join(dir, "dir-ctx");
    writeTree(ctx, { "note.txt": "from the directory\n" });
    const dest = outDir();
    const r = withStdin(
      ["build", "--progress=plain", "-f", "-", "-o", `type=local,dest=${dest}`, ctx],
      "FROM scratch\nCOPY note.txt /\n",
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(join(dest, "note.txt"), "utf8"), "from the directory\n");
  });

  it("exits 2 when both the context and the Dockerfile are asked of stdin", () => {
    const r = withStdin(["build", "-f", "-", "-"], "FROM scratch\n");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /can't use stdin for both build context and dockerfile/);
  });

  it("builds an http git URL's branch and subdir: `kiln build http://…/repo.git#release:site`", async () => {
    const dest = outDir();
    const r = await runAsync([
      "build",
      "--progress=plain",
      "-o",
      `type=local,dest=${dest}`,
      `${http.url("repo.git")}#release:site`,
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(join(dest, "site", "index.html"), "utf8"), "release page\n");
    assert.throws(() => readFileSync(join(dest, "site", "README")));
  });

  it("builds an ssh:// git URL with the agent of SSH_AUTH_SOCK, forwarded without --ssh", async () => {
    const dest = outDir();
    const r = await runAsync(
      [
        "build",
        "--progress=plain",
        "-o",
        `type=local,dest=${dest}`,
        `${sshd.url(join(repos, "repo.git"))}#main:site`,
      ],
      { ...kiln.env, SSH_AUTH_SOCK: agent.socket },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(join(dest, "site", "index.html"), "utf8"), "main page\n");
  });

  it("copies from a named git build context: --build-context pages=<git url>", async () => {
    const ctx = join(dir, "named-ctx");
    writeTree(ctx, { Dockerfile: "FROM scratch\nCOPY --from=pages index.html /pages/\n" });
    const dest = outDir();
    const r = await runAsync([
      "build",
      "--progress=plain",
      "--build-context",
      `pages=${http.url("repo.git")}#release:site`,
      "-o",
      `type=local,dest=${dest}`,
      ctx,
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(join(dest, "pages", "index.html"), "utf8"), "release page\n");
  });

  describe("on a remote builder (kilnd over a unix socket)", () => {
    let kilnd: KilndProcess;
    const builder = `kiln-e2e-ctx-${process.pid}`;
    before(async () => {
      kilnd = await startKilnd(join(dir, "kilnd"));
      kiln.ok(["create", "--name", builder, "--driver", "remote", "--bootstrap", `unix://${kilnd.socket}`]);
    });
    after(async () => {
      kiln.run(["rm", builder]);
      await kilnd?.stop();
    });

    it("sends a tar context from stdin to the remote engine", () => {
      const src = join(dir, "remote-tar-src");
      writeTree(src, { Dockerfile: "FROM scratch\nCOPY data.txt /\n", "data.txt": "sent from stdin\n" });
      const dest = outDir();
      const r = withStdin(
        ["build", "--builder", builder, "--progress=plain", "-o", `type=local,dest=${dest}`, "-"],
        execFileSync("tar", ["-C", src, "-cJf", "-", "."]),
      );
      assert.equal(r.status, 0, r.stderr);
      assert.equal(readFileSync(join(dest, "data.txt"), "utf8"), "sent from stdin\n");
    });

    it("fetches an ssh:// git context on the engine with the client's agent relayed over the session", async () => {
      const dest = outDir();
      const r = await runAsync(
        [
          "build",
          "--builder",
          builder,
          "--progress=plain",
          "-o",
          `type=local,dest=${dest}`,
          `${sshd.url(join(repos, "repo.git"))}#release:site`,
        ],
        { ...kiln.env, SSH_AUTH_SOCK: agent.socket },
      );
      assert.equal(r.status, 0, r.stderr);
      assert.equal(readFileSync(join(dest, "site", "index.html"), "utf8"), "release page\n");
    });
  });

  it("exits 1 naming the repository and ref when the ref does not exist", async () => {
    const r = await runAsync(["build", "--progress=plain", `${http.url("repo.git")}#no-such-ref:site`]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /repo\.git does not contain ref no-such-ref/);
  });
});
