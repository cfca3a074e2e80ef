import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  parseGroup,
  parsePasswd,
  resolveUser,
  resolveUserFromEntries,
} from "../../../src/worker/oci/user.js";

const passwd = parsePasswd(
  [
    "root:x:0:0:root:/root:/bin/sh",
    "user:x:1000:1000:user:/home/user:/bin/sh",
    "broken line",
    "svc:x:200:300::/srv:",
  ].join("\n"),
);
const groups = parseGroup(
  ["root:x:0:", "staff:x:50:user,other", "user:x:1000:", "wheel:x:10:user", "bad"].join("\n"),
);

describe("OCI user resolution", () => {
  it("parses passwd entries and skips malformed lines", () => {
    assert.deepEqual(
      passwd.map((p) => [p.name, p.uid, p.gid, p.home]),
      [
        ["root", 0, 0, "/root"],
        ["user", 1000, 1000, "/home/user"],
        ["svc", 200, 300, "/srv"],
      ],
    );
  });

  it("parses group members", () => {
    assert.deepEqual(groups.find((g) => g.name === "staff")?.members, ["user", "other"]);
  });

  it("treats an empty user as root", () => {
    assert.deepEqual(resolveUserFromEntries("", passwd, groups), {
      uid: 0,
      gid: 0,
      additionalGids: [],
      home: "/",
    });
  });

  it("resolves a name to its uid, primary gid, member groups and home", () => {
    assert.deepEqual(resolveUserFromEntries("user", passwd, groups), {
      uid: 1000,
      gid: 1000,
      additionalGids: [50, 10],
      home: "/home/user",
    });
  });

  it("resolves a numeric uid present in passwd like its name", () => {
    assert.deepEqual(
      resolveUserFromEntries("1000", passwd, groups),
      resolveUserFromEntries("user", passwd, groups),
    );
  });

  it("accepts a numeric uid missing from passwd with gid 0 and home /", () => {
    assert.deepEqual(resolveUserFromEntries("4242", passwd, groups), {
      uid: 4242,
      gid: 0,
      additionalGids: [],
      home: "/",
    });
  });

  it("accepts numeric ids without passwd or group files", () => {
    assert.deepEqual(resolveUserFromEntries("7:8", undefined, undefined), {
      uid: 7,
      gid: 8,
      additionalGids: [],
      home: "/",
    });
  });

  it("drops supplementary groups when the group is explicit", () => {
    assert.deepEqual(resolveUserFromEntries("user:staff", passwd, groups), {
      uid: 1000,
      gid: 50,
      additionalGids: [],
      home: "/home/user",
    });
  });

  it("rejects an unknown user name, naming the user", () => {
    assert.throws(() => resolveUserFromEntries("ghost", passwd, groups), /unable to find user ghost/);
  });

  it("rejects a user name when the image has no passwd file", () => {
    assert.throws(
      () => resolveUserFromEntries("user", undefined, undefined),
      /user user: the image has no \/etc\/passwd/,
    );
  });

  it("rejects an unknown group name, naming the group", () => {
    assert.throws(() => resolveUserFromEntries("user:ghosts", passwd, groups), /unable to find group ghosts/);
  });

  it("rejects an empty group after the colon", () => {
    assert.throws(() => resolveUserFromEntries("user:", passwd, groups), /group after ":" is empty/);
  });

  describe("reading the rootfs", () => {
    let root: string;
    beforeEach(async () => {
      root = await mkdtemp(path.join(tmpdir(), "kiln-user-"));
      await mkdir(path.join(root, "etc"));
      await mkdir(path.join(root, "real"));
    });
    afterEach(() => rm(root, { recursive: true, force: true }));

    it("follows an absolute /etc/passwd symlink inside the rootfs, not on the host", async () => {
      await writeFile(path.join(root, "real/passwd"), "app:x:321:654::/app:/bin/sh\n");
      await symlink("/real/passwd", path.join(root, "etc/passwd"));
      const u = await resolveUser(root, "app");
      assert.deepEqual([u.uid, u.gid, u.home], [321, 654, "/app"]);
    });

    it("fails for a name when the rootfs has no /etc/passwd", async () => {
      await assert.rejects(resolveUser(root, "app"), /unable to find user app/);
    });
  });
});
