import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import fc from "fast-check";
import { resolveInRoot } from "../../../src/worker/oci/root-path.js";

describe("resolveInRoot", () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), "kiln-rootpath-"));
    await mkdir(path.join(root, "usr/lib"), { recursive: true });
    await symlink("/usr/lib", path.join(root, "lib"));
    await symlink("../../../../..", path.join(root, "usr/up"));
    await symlink("/etc/shadow", path.join(root, "escape"));
    await symlink("loop2", path.join(root, "loop1"));
    await symlink("loop1", path.join(root, "loop2"));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it("follows an absolute symlink relative to the root", async () => {
    assert.equal(await resolveInRoot(root, "/lib/x.so"), path.join(root, "usr/lib/x.so"));
  });

  it("clamps .. at the root", async () => {
    assert.equal(await resolveInRoot(root, "/../../etc/passwd"), path.join(root, "etc/passwd"));
  });

  it("clamps a relative symlink climbing above the root", async () => {
    assert.equal(await resolveInRoot(root, "/usr/up/etc/passwd"), path.join(root, "etc/passwd"));
  });

  it("keeps an absolute symlink to a host file inside the root", async () => {
    assert.equal(await resolveInRoot(root, "/escape"), path.join(root, "etc/shadow"));
  });

  it("rejects a symlink loop", async () => {
    await assert.rejects(resolveInRoot(root, "/loop1"), /too many levels of symbolic links/);
  });

  it("never resolves outside the root for any path of dots, names and links", async () => {
    const part = fc.constantFrom("..", ".", "lib", "usr", "up", "escape", "x", "");
    await fc.assert(
      fc.asyncProperty(fc.array(part, { maxLength: 8 }), async (parts) => {
        const p = await resolveInRoot(root, `/${parts.join("/")}`);
        assert.ok(p === root || p.startsWith(`${root}/`), p);
      }),
      { numRuns: 200 },
    );
  });
});
