import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type GitOptions, git as gitState, marshal } from "../../src/llb/builder.js";
import type { SourceOp } from "../../src/llb/ops.js";
import { GitMirror } from "../../src/source/git-mirror.js";
import { checkoutGitToDir, resolveGitKey, resolveGitSource } from "../../src/source/git-source.js";
import { GitHttpServer, git, TestRepo } from "../support/git-server.js";

/** The source op the LLB builder (and so the Dockerfile frontend) makes for a git URL. */
function gitOp(url: string, opts: GitOptions = {}): { identifier: string; attrs: Record<string, string> } {
  const def = marshal(gitState(url, "", opts));
  const op = def.vertices.get(def.root!.vertex)!.op as SourceOp;
  return { identifier: op.identifier, attrs: { ...op.attrs } };
}

describe("git source over HTTP (git http-backend)", function () {
  this.timeout(60000);
  let root: string;
  let work: string;
  let server: GitHttpServer;
  let repo: TestRepo;
  let first: string;
  let second: string;
  let n = 0;
  const dest = () => join(work, `out-${n++}`);
  const cacheDir = () => join(work, "mirrors");
  const repoUrl = () => server.url("repo.git");

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "kiln-git-root-"));
    work = await mkdtemp(join(tmpdir(), "kiln-git-work-"));
    repo = await TestRepo.init(join(root, "repo.git"));
    await repo.write({ "README.md": "v1\n", "docs/guide.md": "guide v1\n", "docs/deep/x.txt": "x\n" });
    first = await repo.commit("first", new Date("2001-02-03T04:05:06Z"));
    await repo.tag("v1.0.0");
    await repo.tag("v1.0.0-annotated", "release");
    await repo.write({ "README.md": "v2\n" });
    second = await repo.commit("second", new Date("2002-02-03T04:05:06Z"));
    server = await GitHttpServer.start(root);
  });
  afterEach(async () => {
    await server.stop();
    await rm(root, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  it("checks out a branch: its files, no .git, the branch's commit returned", async () => {
    const { identifier, attrs } = gitOp(repoUrl(), { ref: "main" });
    const out = dest();
    const { commit } = await checkoutGitToDir(identifier, attrs, out, { cacheDir: cacheDir() });
    assert.equal(commit, second);
    assert.deepEqual((await readdir(out)).sort(), ["README.md", "docs"]);
    assert.equal(await readFile(join(out, "README.md"), "utf8"), "v2\n");
  });

  it("checks out the default branch when no ref is given", async () => {
    const { identifier, attrs } = gitOp(repoUrl());
    const out = dest();
    assert.equal((await checkoutGitToDir(identifier, attrs, out, { cacheDir: cacheDir() })).commit, second);
  });

  it("checks out a lightweight tag", async () => {
    const { identifier, attrs } = gitOp(repoUrl(), { ref: "v1.0.0" });
    const out = dest();
    const { commit } = await checkoutGitToDir(identifier, attrs, out, { cacheDir: cacheDir() });
    assert.equal(commit, first);
    assert.equal(await readFile(join(out, "README.md"), "utf8"), "v1\n");
  });

  it("checks out an annotated tag as the commit it points to", async () => {
    const { identifier, attrs } = gitOp(repoUrl(), { ref: "v1.0.0-annotated" });
    const out = dest();
    const { commit } = await checkoutGitToDir(identifier, attrs, out, { cacheDir: cacheDir() });
    assert.equal(commit, first);
    assert.equal(await readFile(join(out, "README.md"), "utf8"), "v1\n");
  });

  it("checks out a full commit id that no branch points at any more", async () => {
    const { identifier, attrs } = gitOp(repoUrl(), { ref: first });
    assert.equal(await resolveGitKey(identifier, attrs), first, "a full commit id is its own key");
    const out = dest();
    const { commit } = await checkoutGitToDir(identifier, attrs, out, { cacheDir: cacheDir() });
    assert.equal(commit, first);
    assert.equal(await readFile(join(out, "README.md"), "utf8"), "v1\n");
  });

  it("keys a branch by its commit, and a new commit on the branch changes the key", async () => {
    const { identifier, attrs } = gitOp(repoUrl(), { ref: "main" });
    const before = await resolveGitKey(identifier, attrs);
    assert.equal(before, second);
    await repo.write({ "README.md": "v3\n" });
    const third = await repo.commit("third");
    const after = await resolveGitKey(identifier, attrs);
    assert.equal(after, third);
    const out = dest();
    assert.equal((await checkoutGitToDir(identifier, attrs, out, { cacheDir: cacheDir() })).commit, third);
    assert.equal(await readFile(join(out, "README.md"), "utf8"), "v3\n");
  });

  it("puts subdir and keep-git-dir into the key", async () => {
    const sub = gitOp(repoUrl(), { ref: "main", subdir: "docs" });
    const kept = gitOp(repoUrl(), { ref: "main", keepGitDir: true });
    assert.equal(await resolveGitKey(sub.identifier, sub.attrs), `${second}:docs`);
    assert.equal(await resolveGitKey(kept.identifier, kept.attrs), `${second}.git#refs/heads/main`);
  });

  it("checks out only the subdir, at the result's root", async () => {
    const { identifier, attrs } = gitOp(`${repoUrl()}#main:docs`);
    const out = dest();
    await checkoutGitToDir(identifier, attrs, out, { cacheDir: cacheDir() });
    assert.deepEqual((await readdir(out)).sort(), ["deep", "guide.md"]);
    assert.equal(await readFile(join(out, "deep", "x.txt"), "utf8"), "x\n");
  });

  it("fails naming the subdir when the repository lacks it", async () => {
    const { identifier, attrs } = gitOp(repoUrl(), { ref: "main", subdir: "nope" });
    await assert.rejects(checkoutGitToDir(identifier, attrs, dest(), { cacheDir: cacheDir() }), /"nope"/);
  });

  it("keeps .git with git.keepgitdir, HEAD at the commit and the branch fetched", async () => {
    const { identifier, attrs } = gitOp(repoUrl(), { ref: "main", keepGitDir: true });
    const out = dest();
    await checkoutGitToDir(identifier, attrs, out, { cacheDir: cacheDir() });
    assert.ok((await stat(join(out, ".git"))).isDirectory());
    assert.equal((await git(out, ["rev-parse", "HEAD"])).trim(), second);
    assert.equal((await git(out, ["rev-parse", "refs/heads/main"])).trim(), second);
    assert.equal((await git(out, ["status", "--porcelain"])).trim(), "", "the work tree is clean");
    assert.equal((await git(out, ["remote", "get-url", "origin"])).trim(), repoUrl());
  });

  it("keeps an annotated tag object in .git with git.keepgitdir", async () => {
    const { identifier, attrs } = gitOp(repoUrl(), { ref: "v1.0.0-annotated", keepGitDir: true });
    const out = dest();
    await checkoutGitToDir(identifier, attrs, out, { cacheDir: cacheDir() });
    assert.equal((await git(out, ["cat-file", "-t", "refs/tags/v1.0.0-annotated"])).trim(), "tag");
    assert.equal((await git(out, ["rev-parse", "HEAD"])).trim(), first);
  });

  it("leaves checkout times by default and sets the commit time with git.mtime=commit", async () => {
    const started = Date.now() - 1000;
    const plain = gitOp(repoUrl(), { ref: "v1.0.0" });
    const outPlain = dest();
    await checkoutGitToDir(plain.identifier, plain.attrs, outPlain, { cacheDir: cacheDir() });
    assert.ok((await stat(join(outPlain, "README.md"))).mtimeMs >= started);

    const dated = gitOp(repoUrl(), { ref: "v1.0.0", mtime: "commit" });
    const outDated = dest();
    await checkoutGitToDir(dated.identifier, dated.attrs, outDated, { cacheDir: cacheDir() });
    const commitTime = new Date("2001-02-03T04:05:06Z").getTime();
    assert.equal((await stat(join(outDated, "README.md"))).mtimeMs, commitTime);
    assert.equal((await stat(join(outDated, "docs", "deep"))).mtimeMs, commitTime);
  });

  it("reuses the mirror: a second checkout fetches no pack and keeps the same mirror directory", async () => {
    const { identifier, attrs } = gitOp(repoUrl(), { ref: "main" });
    await checkoutGitToDir(identifier, attrs, dest(), { cacheDir: cacheDir() });
    const mirror = GitMirror.pathFor(cacheDir(), repoUrl());
    const inode = (await stat(mirror)).ino;
    assert.equal(server.fetches(), 1);
    const out = dest();
    await checkoutGitToDir(identifier, attrs, out, { cacheDir: cacheDir() });
    assert.equal(server.fetches(), 1, "no pack was fetched the second time");
    assert.equal((await stat(mirror)).ino, inode);
    assert.equal(await readFile(join(out, "README.md"), "utf8"), "v2\n");
  });

  it("checks out a pinned commit already in the mirror without contacting the server", async () => {
    const { identifier, attrs } = gitOp(repoUrl(), { ref: "main" });
    const pin = await resolveGitSource(identifier, attrs);
    await checkoutGitToDir(identifier, attrs, dest(), { cacheDir: cacheDir(), pin });
    const before = server.requests.length;
    await checkoutGitToDir(identifier, attrs, dest(), { cacheDir: cacheDir(), pin });
    assert.equal(server.requests.length, before);
  });

  it("fetches only the new commit after the branch moves", async () => {
    const { identifier, attrs } = gitOp(repoUrl(), { ref: "main" });
    await checkoutGitToDir(identifier, attrs, dest(), { cacheDir: cacheDir() });
    await repo.write({ "new.txt": "n\n" });
    const third = await repo.commit("third");
    const out = dest();
    assert.equal((await checkoutGitToDir(identifier, attrs, out, { cacheDir: cacheDir() })).commit, third);
    assert.equal(server.fetches(), 2);
    assert.equal(await readFile(join(out, "new.txt"), "utf8"), "n\n");
  });

  it("fails naming the remote and ref when the ref does not exist", async () => {
    const { identifier, attrs } = gitOp(repoUrl(), { ref: "no-such-branch" });
    await assert.rejects(resolveGitKey(identifier, attrs), (e: Error) => {
      assert.ok(e.message.includes(repoUrl()), e.message);
      assert.ok(e.message.includes("no-such-branch"), e.message);
      return true;
    });
  });

  it("rejects a ref whose commit does not match git.checksum", async () => {
    const { identifier, attrs } = gitOp(repoUrl(), { ref: "main", checksum: first.slice(0, 12) });
    await assert.rejects(resolveGitKey(identifier, attrs), (e: Error) => {
      assert.ok(e.message.includes(first.slice(0, 12)) && e.message.includes(second), e.message);
      return true;
    });
  });

  it("authenticates with the GIT_AUTH_TOKEN secret as x-access-token basic auth", async () => {
    server.requiredAuthorization = `basic ${Buffer.from("x-access-token:s3cret").toString("base64")}`;
    const { identifier, attrs } = gitOp(repoUrl(), { ref: "main" });
    const getSecret = async (id: string) => (id === "GIT_AUTH_TOKEN" ? Buffer.from("s3cret") : undefined);
    const out = dest();
    const { commit } = await checkoutGitToDir(identifier, attrs, out, { cacheDir: cacheDir(), getSecret });
    assert.equal(commit, second);
    await assert.rejects(
      resolveGitKey(identifier, attrs),
      /401|Authentication failed|could not read Username/,
    );
  });

  it("prefers the per-host GIT_AUTH_HEADER.<host> secret", async () => {
    server.requiredAuthorization = "Bearer host-scoped";
    const { identifier, attrs } = gitOp(repoUrl(), { ref: "main" });
    const host = new URL(repoUrl()).host;
    const secrets: Record<string, string> = {
      [`GIT_AUTH_HEADER.${host}`]: "Bearer host-scoped",
      GIT_AUTH_HEADER: "Bearer global",
    };
    const getSecret = async (id: string) => (secrets[id] ? Buffer.from(secrets[id]) : undefined);
    assert.equal(await resolveGitKey(identifier, attrs, { getSecret }), second);
  });

  describe("with a submodule", () => {
    let subCommit: string;
    beforeEach(async () => {
      const sub = await TestRepo.init(join(root, "sub.git"));
      await sub.write({ "lib.txt": "library\n" });
      subCommit = await sub.commit("lib");
      await repo.run(["submodule", "--quiet", "add", server.url("sub.git"), "libs/sub"]);
      await repo.commit("add submodule");
    });

    it("checks out submodules, leaving no .git link into the engine's mirror", async () => {
      const { identifier, attrs } = gitOp(repoUrl(), { ref: "main" });
      const out = dest();
      await checkoutGitToDir(identifier, attrs, out, { cacheDir: cacheDir() });
      assert.equal(await readFile(join(out, "libs", "sub", "lib.txt"), "utf8"), "library\n");
      assert.deepEqual(await readdir(join(out, "libs", "sub")), ["lib.txt"]);
      const again = dest();
      await checkoutGitToDir(identifier, attrs, again, { cacheDir: cacheDir() });
      assert.deepEqual(
        await readdir(join(again, "libs", "sub")),
        ["lib.txt"],
        "a second checkout reuses the module",
      );
    });

    it("checks out submodules inside a kept .git, at the recorded commit", async () => {
      const { identifier, attrs } = gitOp(repoUrl(), { ref: "main", keepGitDir: true });
      const out = dest();
      await checkoutGitToDir(identifier, attrs, out, { cacheDir: cacheDir() });
      assert.equal((await git(join(out, "libs", "sub"), ["rev-parse", "HEAD"])).trim(), subCommit);
    });

    it("leaves submodules empty with git.skipsubmodules", async () => {
      const { identifier, attrs } = gitOp(repoUrl(), { ref: "main", skipSubmodules: true });
      const out = dest();
      await checkoutGitToDir(identifier, attrs, out, { cacheDir: cacheDir() });
      assert.deepEqual(await readdir(join(out, "libs", "sub")), []);
    });
  });
});
