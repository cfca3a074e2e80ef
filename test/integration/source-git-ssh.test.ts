import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type GitOptions, git as gitState, marshal } from "../../src/llb/builder.js";
import type { SourceOp } from "../../src/llb/ops.js";
import { checkoutGitToDir, resolveGitKey } from "../../src/source/git-source.js";
import { GitSshServer, SshAgent, TestRepo } from "../support/git-server.js";

function gitOp(url: string, opts: GitOptions = {}): { identifier: string; attrs: Record<string, string> } {
  const def = marshal(gitState(url, "", opts));
  const op = def.vertices.get(def.root!.vertex)!.op as SourceOp;
  return { identifier: op.identifier, attrs: { ...op.attrs } };
}

describe("git source over SSH (a real sshd and ssh-agent)", function () {
  this.timeout(60000);
  let root: string;
  let work: string;
  let sshd: GitSshServer;
  let agent: SshAgent;
  let commit: string;
  let n = 0;
  const dest = () => join(work, `out-${n++}`);
  const cacheDir = () => join(work, "mirrors");
  const repoUrl = () => sshd.url(join(root, "repo.git"));

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "kiln-git-ssh-root-"));
    const repo = await TestRepo.init(join(root, "repo.git"));
    await repo.write({ "hello.txt": "over ssh\n" });
    commit = await repo.commit("first");
    sshd = await GitSshServer.start();
    agent = await SshAgent.start([sshd.clientKey]);
  });
  after(async () => {
    await agent?.stop();
    await sshd?.stop();
    await rm(root, { recursive: true, force: true });
  });
  beforeEach(async () => {
    work = await mkdtemp(join(tmpdir(), "kiln-git-ssh-work-"));
  });
  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("marks ssh remotes for the default SSH agent, as the frontend does", () => {
    const { attrs } = gitOp(repoUrl());
    assert.equal(attrs["git.mountsshsock"], "default");
    assert.equal(attrs["git.fullurl"], repoUrl());
  });

  it("checks out through the SSH agent's key, checking the host against git.knownsshhosts", async () => {
    const { identifier, attrs } = gitOp(repoUrl(), { ref: "main", knownSshHosts: sshd.knownHostsLine });
    const out = dest();
    const result = await checkoutGitToDir(identifier, attrs, out, {
      cacheDir: cacheDir(),
      sshAuthSock: agent.socket,
    });
    assert.equal(result.commit, commit);
    assert.equal(await readFile(join(out, "hello.txt"), "utf8"), "over ssh\n");
  });

  it("resolves the key over ssh without known hosts (no host key checking, as BuildKit)", async () => {
    const { identifier, attrs } = gitOp(repoUrl(), { ref: "main" });
    assert.equal(await resolveGitKey(identifier, attrs, { sshAuthSock: agent.socket }), commit);
  });

  it("fails without the SSH agent, naming the remote", async () => {
    const { identifier, attrs } = gitOp(repoUrl(), { ref: "main", knownSshHosts: sshd.knownHostsLine });
    await assert.rejects(
      checkoutGitToDir(identifier, attrs, dest(), { cacheDir: cacheDir() }),
      (e: Error) => {
        assert.ok(e.message.includes(repoUrl()), e.message);
        assert.match(e.message, /Permission denied/);
        return true;
      },
    );
  });

  it("refuses a host whose key is not the one git.knownsshhosts names", async () => {
    const other = await GitSshServer.start();
    try {
      const wrongKey = `[127.0.0.1]:${sshd.port} ${other.knownHostsLine.split(" ").slice(1).join(" ")}`;
      const { identifier, attrs } = gitOp(repoUrl(), { ref: "main", knownSshHosts: wrongKey });
      await assert.rejects(
        resolveGitKey(identifier, attrs, { sshAuthSock: agent.socket }),
        /Host key verification failed|REMOTE HOST IDENTIFICATION/,
      );
    } finally {
      await other.stop();
    }
  });
});
