import assert from "node:assert/strict";
import { resolveOwner } from "../../../src/worker/fileop/owner.js";
import { TempDirs, writeTree } from "./tree-fixtures.js";

describe("resolveOwner", () => {
  const temp = new TempDirs();
  let root: string;
  beforeEach(async () => {
    root = await temp.make();
    await writeTree(root, {
      "etc/passwd": "# comment\nroot:x:0:0::/root:/bin/sh\nbuilder:x:1000:1001::/home/b:/bin/sh\n",
      "etc/group": "root:x:0:\nbuilders:x:1001:\ndocker:x:999:builder\n",
    });
  });
  afterEach(() => temp.cleanup());

  it("keeps source ownership when no owner is given", async () => {
    assert.equal(await resolveOwner(undefined, root), undefined);
  });

  it("uses a numeric user id for the group too", async () => {
    assert.deepEqual(await resolveOwner({ user: { id: 33 } }, root), { uid: 33, gid: 33 });
  });

  it("takes a user name's primary group from /etc/passwd", async () => {
    assert.deepEqual(await resolveOwner({ user: { name: "builder" } }, root), { uid: 1000, gid: 1001 });
  });

  it("lets an explicit group override the user's", async () => {
    assert.deepEqual(await resolveOwner({ user: { name: "builder" }, group: { name: "docker" } }, root), {
      uid: 1000,
      gid: 999,
    });
  });

  it("treats numeric names as ids without a lookup", async () => {
    assert.deepEqual(await resolveOwner({ user: { name: "1234" }, group: { name: "5" } }, root), {
      uid: 1234,
      gid: 5,
    });
  });

  it("gives root's uid with only a group", async () => {
    assert.deepEqual(await resolveOwner({ group: { name: "builders" } }, root), { uid: 0, gid: 1001 });
  });

  it("says what to do when the image has no /etc/group", async () => {
    const bare = await temp.make();
    await assert.rejects(
      resolveOwner({ group: { name: "staff" } }, bare),
      /\/etc\/group does not exist.*numeric id/,
    );
  });

  it("names an unknown group", async () => {
    await assert.rejects(
      resolveOwner({ group: { name: "nope" } }, root),
      /unable to find group nope: no matching entries in group file/,
    );
  });
});
