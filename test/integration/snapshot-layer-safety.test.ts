// Layers that try to write outside the directory they are applied to: each is rejected with the
// offending entry named, and nothing outside the root changes. Run against a plain directory and
// through both snapshotters.
import assert from "node:assert/strict";
import { lstat, mkdir, readdir, readFile, readlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { applyLayerToDir, extractTarToDir } from "../../src/archive/extract-dir.js";
import { CopySnapshotter } from "../../src/snapshot/copy.js";
import { unmountAllUnder } from "../../src/snapshot/mount.js";
import { OverlaySnapshotter } from "../../src/snapshot/overlay.js";
import { makeTempDir, mountsUnder, removeTempDir, type TarSpec, tarOf } from "../unit/snapshot/fixtures.js";

/** Every path under `dir` except those under `skip` (symlinks listed, never followed). */
async function pathsOutside(dir: string, skip: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (p === skip) continue;
      out.push(p);
      if (entry.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out.sort();
}

const hostProbe = `/tmp/kiln-escape-probe-${process.pid}`;

/** [what it tries, entries, the entry the error must name] */
const escapes: [string, TarSpec[], string][] = [
  ["a relative path climbing out", [{ name: "../x", content: "bad" }], "../x"],
  ["an absolute path climbing out", [{ name: "/../x", content: "bad" }], "/../x"],
  ["a path climbing out midway", [{ name: "a/../../x", content: "bad" }], "a/../../x"],
  [
    "a write through a symlink to /",
    [
      { name: "evil", type: "symlink", linkname: "/" },
      { name: `evil${hostProbe}`, content: "bad" },
    ],
    `evil${hostProbe}`,
  ],
  [
    "a write through a relative symlink climbing out",
    [
      { name: "up", type: "symlink", linkname: "../.." },
      { name: "up/x", content: "bad" },
    ],
    "up/x",
  ],
  [
    "a write through a symlink chain that ends outside",
    [
      { name: "dir/", type: "directory" },
      { name: "dir/hop", type: "symlink", linkname: "../out" },
      { name: "out", type: "symlink", linkname: "../../.." },
      { name: "dir/hop/x", content: "bad" },
    ],
    "dir/hop/x",
  ],
  [
    "a hard link to a file outside",
    [{ name: "stolen", type: "link", linkname: "../../etc/passwd" }],
    "stolen",
  ],
  [
    "a hard link through a symlink to /",
    [
      { name: "evil", type: "symlink", linkname: "/" },
      { name: "stolen", type: "link", linkname: "evil/etc/passwd" },
    ],
    "stolen",
  ],
  ["a whiteout of the parent directory", [{ name: "a/.wh..." }], "a/.wh..."],
];

describe("applying unsafe layers to a directory", () => {
  let sandbox: string;
  let root: string;
  let sentinel: string;

  beforeEach(async () => {
    sandbox = await makeTempDir("unsafe");
    root = join(sandbox, "a", "b", "root");
    await mkdir(root, { recursive: true });
    // What "../../etc/passwd" from the root names: a file an unsafe extractor would link to.
    sentinel = join(sandbox, "a", "etc", "passwd");
    await mkdir(join(sandbox, "a", "etc"));
    await writeFile(sentinel, "sentinel");
  });

  afterEach(async () => {
    await removeTempDir(sandbox);
  });

  for (const [what, specs, named] of escapes) {
    it(`rejects ${what}, naming ${named}, and writes nothing outside`, async () => {
      const before = await pathsOutside(sandbox, root);
      const hostPasswd = await readFile("/etc/passwd");
      await assert.rejects(applyLayerToDir(root, await tarOf(specs)), (err: Error) => {
        assert.ok(err.message.includes(JSON.stringify(named)), err.message);
        return true;
      });
      assert.deepEqual(await pathsOutside(sandbox, root), before);
      assert.equal((await lstat(sentinel)).nlink, 1);
      assert.ok((await readFile("/etc/passwd")).equals(hostPasswd));
      await assert.rejects(lstat(hostProbe), { code: "ENOENT" });
    });
  }

  it("rejects the same entries when unpacking a plain tarball", async () => {
    await assert.rejects(extractTarToDir(await tarOf([{ name: "../x", content: "bad" }]), root), /"\.\.\/x"/);
  });

  it("keeps symlinks that point anywhere, as long as nothing is written through them", async () => {
    await applyLayerToDir(
      root,
      await tarOf([
        { name: "to-root", type: "symlink", linkname: "/" },
        { name: "to-passwd", type: "symlink", linkname: "/etc/passwd" },
        { name: "far-up", type: "symlink", linkname: "../../../../x" },
      ]),
    );
    assert.equal(await readlink(join(root, "to-root")), "/");
    assert.equal(await readlink(join(root, "to-passwd")), "/etc/passwd");
    assert.equal(await readlink(join(root, "far-up")), "../../../../x");
  });

  it("follows a relative symlink that stays inside the root", async () => {
    await applyLayerToDir(
      root,
      await tarOf([
        { name: "usr/lib/", type: "directory" },
        { name: "lib", type: "symlink", linkname: "usr/lib" },
        { name: "lib/libc.so", content: "libc" },
      ]),
    );
    assert.equal(await readFile(join(root, "usr/lib/libc.so"), "utf8"), "libc");
    assert.ok((await lstat(join(root, "lib"))).isSymbolicLink());
  });

  it("keeps whiteout-looking names as files when unpacking a plain tarball", async () => {
    await extractTarToDir(await tarOf([{ name: ".wh.notes", content: "n" }]), root);
    assert.deepEqual(await readdir(root), [".wh.notes"]);
  });
});

for (const make of [OverlaySnapshotter.at, CopySnapshotter.at]) {
  describe(`applying unsafe layers through the ${make === OverlaySnapshotter.at ? "overlayfs" : "copy"} snapshotter`, function () {
    this.timeout(30_000);
    let stateDir: string;

    beforeEach(async () => {
      stateDir = await makeTempDir("unsafe-snap");
    });

    afterEach(async () => {
      await unmountAllUnder(stateDir);
      await removeTempDir(stateDir);
    });

    for (const [what, specs, named] of escapes) {
      it(`rejects ${what} and keeps no snapshot or mount`, async () => {
        const s = make(stateDir);
        const base = await s.applyLayer(undefined, await tarOf([{ name: "etc/", type: "directory" }]));
        await assert.rejects(s.applyLayer(base.id, await tarOf(specs)), (err: Error) =>
          err.message.includes(JSON.stringify(named)),
        );
        assert.deepEqual(
          (await s.list()).map((r) => r.id),
          [base.id],
        );
        assert.deepEqual(await mountsUnder(stateDir), []);
        await assert.rejects(lstat(hostProbe), { code: "ENOENT" });
      });
    }
  });
}
