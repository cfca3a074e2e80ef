import assert from "node:assert/strict";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathInRoot, resolveInRoot, SymlinkLoopError } from "../../../src/fs/scoped-path.js";
import { TempDirs } from "../fileop/tree-fixtures.js";

describe("resolveInRoot", () => {
  const temp = new TempDirs();
  let root: string;
  beforeEach(async () => {
    root = await temp.make();
    await mkdir(join(root, "real/sub"), { recursive: true });
    await writeFile(join(root, "real/sub/file"), "x");
  });
  afterEach(() => temp.cleanup());

  it("clamps parent references at the root", async () => {
    assert.equal(await resolveInRoot(root, "../../../real"), join(root, "real"));
  });

  it("takes absolute symlink targets from the root, not the host", async () => {
    await symlink("/real/sub", join(root, "abs"));
    assert.equal(await resolveInRoot(root, "/abs/file"), join(root, "real/sub/file"));
  });

  it("keeps a relative symlink that climbs above the root inside it", async () => {
    await symlink("../../../../../etc", join(root, "real/escape"));
    assert.equal(await resolveInRoot(root, "real/escape/passwd"), join(root, "etc/passwd"));
  });

  it("follows the final symlink only when asked", async () => {
    await symlink("real/sub/file", join(root, "link"));
    assert.equal(await resolveInRoot(root, "link"), join(root, "real/sub/file"));
    assert.equal(await resolveInRoot(root, "link", { followFinalSymlink: false }), join(root, "link"));
  });

  it("cleans the path lexically before following links, as BuildKit's fs.RootPath does", async () => {
    await symlink("real/sub", join(root, "dirlink"));
    assert.equal(await resolveInRoot(root, "dirlink/.."), root);
  });

  it("resolves .. in a link target against the link's real directory", async () => {
    await symlink("real/sub", join(root, "dirlink"));
    await symlink("../sub/file", join(root, "real/sub/up"));
    assert.equal(await resolveInRoot(root, "dirlink/up"), join(root, "real/sub/file"));
  });

  it("keeps components that do not exist yet", async () => {
    assert.equal(await resolveInRoot(root, "/real/new/deeper"), join(root, "real/new/deeper"));
  });

  it("rejects symlink loops", async () => {
    await symlink("b", join(root, "a"));
    await symlink("a", join(root, "b"));
    await assert.rejects(resolveInRoot(root, "a/x"), SymlinkLoopError);
  });
});

describe("pathInRoot", () => {
  it("shows a host path as seen inside the root", () => {
    assert.equal(pathInRoot("/var/x/root", "/var/x/root/a/b"), "/a/b");
    assert.equal(pathInRoot("/var/x/root", "/var/x/root"), "/");
  });
});
