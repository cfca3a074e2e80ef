import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BuildRequest, newBuildRequest } from "../../src/client/build-request.js";
import { classifyContext, isGitSshContext } from "../../src/client/context-source.js";
import { type Engine, openEngine } from "../../src/engine/engine.js";
import { LocalSession } from "../../src/session/local-session.js";
import type { ProgressEvent, VertexEvent } from "../../src/solver/progress.js";
import { GitHttpServer, GitSshServer, SshAgent, TestRepo } from "../support/git-server.js";
import { loadWorld } from "../support/world.js";

const world = loadWorld();

function vertices(events: readonly ProgressEvent[]): VertexEvent[] {
  const out = new Map<string, VertexEvent>();
  for (const e of events) if (e.type === "vertex") out.set(e.vertex, { ...out.get(e.vertex), ...e });
  return [...out.values()];
}

describe("git repositories as build contexts (engine, real git servers on 127.0.0.1)", function () {
  this.timeout(180_000);
  let state: string;
  let root: string;
  let work: string;
  let engine: Engine;
  let http: GitHttpServer;
  let repo: TestRepo;
  let featureCommit: string;
  let n = 0;
  const repoUrl = () => http.url("repo.git");

  before(async () => {
    state = await mkdtemp(join(tmpdir(), "kiln-git-ctx-state-"));
    root = await mkdtemp(join(tmpdir(), "kiln-git-ctx-repos-"));
    engine = await openEngine({ stateDir: state });
    repo = await TestRepo.init(join(root, "repo.git"));
    await repo.write({
      "outside.txt": "not in the subdir\n",
      "app/Dockerfile": "FROM scratch\nCOPY . /ctx/\n",
      "app/hello.txt": "hello from main\n",
      "app/docker/alt.Dockerfile": "FROM scratch\nCOPY hello.txt /alt/hello.txt\n",
    });
    await repo.commit("main");
    await repo.run(["checkout", "--quiet", "-b", "feature"]);
    await repo.write({
      "app/hello.txt": "hello from feature\n",
      "app/.dockerignore": "*.log\ndocker\n",
      "app/debug.log": "ignored\n",
    });
    featureCommit = await repo.commit("feature");
    await repo.run(["checkout", "--quiet", "main"]);
    http = await GitHttpServer.start(root);
  });
  after(async () => {
    await http?.stop();
    await engine?.close();
    await rm(state, { recursive: true, force: true });
    await rm(root, { recursive: true, force: true });
  });
  beforeEach(async () => {
    work = await mkdtemp(join(tmpdir(), "kiln-git-ctx-out-"));
  });
  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  async function build(
    contextPath: string,
    given: Partial<BuildRequest> = {},
  ): Promise<{ dest: string; events: ProgressEvent[] }> {
    const dest = join(work, `out-${n++}`);
    const req = newBuildRequest(contextPath, { outputs: [{ type: "local", dest, attrs: {} }], ...given });
    const events: ProgressEvent[] = [];
    await engine.build(req, new LocalSession({ request: req }), { onProgress: (e) => events.push(e) });
    return { dest, events };
  }

  it("builds a branch's subdir with the Dockerfile read from the checkout", async () => {
    const { dest } = await build(`${repoUrl()}#main:app`);
    assert.equal(await readFile(join(dest, "ctx", "hello.txt"), "utf8"), "hello from main\n");
    assert.deepEqual((await readdir(join(dest, "ctx"))).sort(), ["Dockerfile", "docker", "hello.txt"]);
  });

  it("reads -f relative to the URL's subdir", async () => {
    const { dest } = await build(`${repoUrl()}#main:app`, { dockerfilePath: "docker/alt.Dockerfile" });
    assert.equal(await readFile(join(dest, "alt", "hello.txt"), "utf8"), "hello from main\n");
  });

  it("leaves out what the repository's .dockerignore excludes", async () => {
    const { dest } = await build(`${repoUrl()}#feature:app`);
    assert.equal(await readFile(join(dest, "ctx", "hello.txt"), "utf8"), "hello from feature\n");
    assert.deepEqual((await readdir(join(dest, "ctx"))).sort(), [".dockerignore", "Dockerfile", "hello.txt"]);
  });

  it("builds with a Dockerfile the client sent instead of the repository's", async () => {
    const { dest } = await build(`${repoUrl()}#main:app`, {
      dockerfileText: "FROM scratch\nCOPY hello.txt /from-client/\n",
    });
    assert.deepEqual(await readdir(dest), ["from-client"]);
  });

  it("caches the checkout by commit: an unchanged ref fetches nothing and runs nothing again", async () => {
    const url = `${repoUrl()}#feature:app`;
    await build(url);
    const fetchesBefore = http.fetches();
    const again = await build(url);
    assert.equal(http.fetches(), fetchesBefore, "no pack is fetched for a commit already built");
    const steps = vertices(again.events).filter((v) => /load git source|dockerignore|COPY/.test(v.name));
    assert.ok(steps.some((v) => /load git source/.test(v.name)));
    assert.deepEqual(
      steps.filter((v) => !v.cached).map((v) => v.name),
      [],
    );
  });

  it("builds the new commit when the branch moves", async () => {
    const url = `${repoUrl()}#feature:app`;
    await build(url);
    await repo.run(["checkout", "--quiet", "feature"]);
    await repo.write({ "app/hello.txt": "moved on\n" });
    await repo.commit("move feature");
    await repo.run(["checkout", "--quiet", "main"]);
    try {
      const { dest } = await build(url);
      assert.equal(await readFile(join(dest, "ctx", "hello.txt"), "utf8"), "moved on\n");
    } finally {
      // Later tests expect the branch where it was.
      await repo.run(["branch", "--quiet", "-f", "feature", featureCommit]);
    }
  });

  it("takes a named context from a git URL, through the same git source", async () => {
    const { dest } = await build(`${repoUrl()}#main:app`, {
      dockerfileText: "FROM scratch\nCOPY --from=src hello.txt /named/\n",
      buildContexts: { src: { kind: "url", url: `${repoUrl()}#feature:app` } },
    });
    assert.equal(await readFile(join(dest, "named", "hello.txt"), "utf8"), "hello from feature\n");
  });

  it("keeps .git in the context only when BUILDKIT_CONTEXT_KEEP_GIT_DIR is set", async () => {
    const withGit = await TestRepo.init(join(root, "with-git.git"));
    await withGit.write({ Dockerfile: "FROM scratch\nCOPY . /ctx/\n" });
    await withGit.commit("root dockerfile");
    const plain = await build(http.url("with-git.git"));
    assert.deepEqual(await readdir(join(plain.dest, "ctx")), ["Dockerfile"]);
    const kept = await build(http.url("with-git.git"), { buildArgs: { BUILDKIT_CONTEXT_KEEP_GIT_DIR: "1" } });
    assert.match(await readFile(join(kept.dest, "ctx", ".git", "HEAD"), "utf8"), /^[0-9a-f]{40}\n$/);
  });

  it("shows the repository's Dockerfile lines when one of its steps fails", async () => {
    const failing = await TestRepo.init(join(root, "failing.git"));
    await failing.write({ Dockerfile: `FROM ${world.busybox}\nRUN echo checking\nRUN exit 7\n` });
    await failing.commit("fails");
    await assert.rejects(build(http.url("failing.git")), (e: Error) => {
      assert.match(e.message, /Dockerfile:3/);
      assert.match(e.message, />>> RUN exit 7/);
      return true;
    });
  });

  it("tells git contexts (https, http, git@, ssh://, git://) from directories and HTTP files", () => {
    assert.deepEqual(classifyContext("git@example.com:org/repo.git#v1:docs"), {
      kind: "git",
      url: "git@example.com:org/repo.git#v1:docs",
    });
    assert.equal(classifyContext("ssh://git@example.com/org/repo.git").kind, "git");
    assert.equal(classifyContext("git://example.com/org/repo.git").kind, "git");
    assert.equal(classifyContext(`${repoUrl()}#main:app`).kind, "git");
    assert.equal(classifyContext("https://example.com/context.tar.gz").kind, "http");
    assert.equal(classifyContext("./app").kind, "directory");
    assert.ok(isGitSshContext("git@example.com:org/repo.git"));
    assert.ok(!isGitSshContext(repoUrl()));
  });

  describe("errors a user can act on", () => {
    it("names an unreachable repository", async () => {
      await assert.rejects(build("http://127.0.0.1:1/gone.git#main"), (e: Error) => {
        assert.match(e.message, /http:\/\/127\.0\.0\.1:1\/gone\.git/);
        assert.match(e.message, /failed to list refs|failed to connect|unable to access/i);
        return true;
      });
    });

    it("names a ref the repository does not have", async () => {
      await assert.rejects(build(`${repoUrl()}#no-such-branch:app`), /does not contain ref no-such-branch/);
    });

    it("names a subdir the commit does not have", async () => {
      await assert.rejects(build(`${repoUrl()}#main:nowhere`), (e: Error) => {
        assert.match(
          e.message,
          /subdir "nowhere" does not exist in http:\/\/127\.0\.0\.1:\d+\/repo\.git at main/,
        );
        return true;
      });
    });

    it("names the Dockerfile missing from the checkout and where -f is taken from", async () => {
      await assert.rejects(build(`${repoUrl()}#main`), (e: Error) => {
        assert.match(e.message, /Dockerfile not found in git context/);
        assert.match(e.message, /-f/);
        return true;
      });
    });
  });

  describe("over ssh", () => {
    let sshd: GitSshServer;
    let agent: SshAgent;
    before(async () => {
      sshd = await GitSshServer.start();
      agent = await SshAgent.start([sshd.clientKey]);
    });
    after(async () => {
      await agent?.stop();
      await sshd?.stop();
    });

    it("fetches with the client's SSH agent, forwarded over the session", async () => {
      const { dest } = await build(`${sshd.url(join(root, "repo.git"))}#feature:app`, {
        ssh: [{ id: "default", paths: [agent.socket] }],
      });
      assert.equal(await readFile(join(dest, "ctx", "hello.txt"), "utf8"), "hello from feature\n");
    });

    it("says to pass --ssh when the client forwards no agent", async () => {
      await assert.rejects(build(`${sshd.url(join(root, "repo.git"))}#main:app`), (e: Error) => {
        assert.match(e.message, /forwarded no SSH agent "default"/);
        assert.match(e.message, /--ssh default/);
        return true;
      });
    });
  });
});
