import assert from "node:assert/strict";
import { type GitOptions, git as gitState, marshal } from "../../../src/llb/builder.js";
import type { SourceOp } from "../../../src/llb/ops.js";
import { gitSshCommand, redactCredentials } from "../../../src/source/git-command.js";
import { isCommitSha, parseGitSource } from "../../../src/source/git-source-spec.js";

function specOf(url: string, ref = "", opts: GitOptions = {}) {
  const def = marshal(gitState(url, ref, opts));
  const op = def.vertices.get(def.root!.vertex)!.op as SourceOp;
  return parseGitSource(op.identifier, op.attrs);
}

describe("git source identifiers", () => {
  it("reads remote, ref and subdir of an https URL with a #ref:subdir fragment", () => {
    const s = specOf("https://example.com/org/repo.git#v1.2:docs/api");
    assert.equal(s.remote, "https://example.com/org/repo.git");
    assert.equal(s.ref, "v1.2");
    assert.equal(s.subdir, "docs/api");
  });

  it("takes the real remote of an scp-style ssh URL from git.fullurl", () => {
    const s = specOf("git@github.com:moby/buildkit.git", "main");
    assert.equal(s.remote, "git@github.com:moby/buildkit.git");
    assert.equal(s.ref, "main");
    assert.equal(s.mountSshSock, "default");
  });

  it("keeps the port and user of an ssh:// URL", () => {
    assert.equal(specOf("ssh://git@host:2222/r.git").remote, "ssh://git@host:2222/r.git");
  });

  it("treats a scheme-less identifier as https", () => {
    const s = parseGitSource("git://github.com/moby/buildkit#main", {});
    assert.equal(s.remote, "https://github.com/moby/buildkit");
    assert.equal(s.ref, "main");
  });

  it("reads keep-git-dir, skip-submodules, mtime and the auth secret names from attrs", () => {
    const s = specOf("https://h/r.git", "", { keepGitDir: true, skipSubmodules: true, mtime: "commit" });
    assert.equal(s.keepGitDir, true);
    assert.equal(s.skipSubmodules, true);
    assert.equal(s.mtime, "commit");
    assert.equal(s.authTokenSecret, "GIT_AUTH_TOKEN");
    assert.equal(s.authHeaderSecret, "GIT_AUTH_HEADER");
  });

  it("rejects a ref that git would read as an option", () => {
    assert.throws(() => parseGitSource("git://h/r.git#--upload-pack=x", {}), /invalid git ref/);
  });

  it("rejects a checksum that is not hex, naming the remote", () => {
    assert.throws(() => specOf("https://h/r.git", "", { checksum: "v1" }), /https:\/\/h\/r\.git/);
  });

  it("recognises full sha1 and sha256 commit ids only", () => {
    assert.ok(isCommitSha("a".repeat(40)));
    assert.ok(isCommitSha("b".repeat(64)));
    assert.ok(!isCommitSha("a".repeat(12)));
    assert.ok(!isCommitSha("A".repeat(40)));
  });
});

describe("git command environment", () => {
  it("checks host keys strictly against a given known_hosts file", () => {
    assert.match(gitSshCommand("/tmp/kh"), /UserKnownHostsFile='\/tmp\/kh' -o StrictHostKeyChecking=yes/);
  });

  it("without known hosts, skips checking and writes no known_hosts", () => {
    assert.match(gitSshCommand(), /StrictHostKeyChecking=no -o UserKnownHostsFile=\/dev\/null/);
  });

  it("redacts passwords in URLs", () => {
    assert.equal(redactCredentials("https://u:p4ss@h/r.git"), "https://u:xxxxx@h/r.git");
  });
});
