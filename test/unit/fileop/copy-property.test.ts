import assert from "node:assert/strict";
import { chmod, lchown, link, mkdir, symlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { contentChecksum } from "../../../src/fs/checksum.js";
import { executeFileAction } from "../../../src/worker/fileop/execute.js";
import { copyAction } from "./copy-helpers.js";
import { readTree, TempDirs } from "./tree-fixtures.js";

type Kind =
  | { kind: "file"; content: string; mode: number; uid: number; mtime: number }
  | { kind: "dir"; mode: number; uid: number; mtime: number }
  | { kind: "symlink"; target: string }
  | { kind: "hardlink"; to: number };

const name = fc.constantFrom("a", "b", "c", "dd", "e.txt", "f g");
const spec = fc.array(
  fc.record({
    path: fc.array(name, { minLength: 1, maxLength: 3 }),
    node: fc.oneof(
      fc.record({
        kind: fc.constant("file" as const),
        content: fc.string({ maxLength: 40 }),
        mode: fc.constantFrom(0o644, 0o600, 0o755, 0o4755, 0o444),
        uid: fc.constantFrom(0, 1000, 65534),
        mtime: fc.integer({ min: 0, max: 2_000_000_000 }),
      }),
      fc.record({
        kind: fc.constant("dir" as const),
        mode: fc.constantFrom(0o755, 0o700, 0o1777, 0o555),
        uid: fc.constantFrom(0, 1000),
        mtime: fc.integer({ min: 0, max: 2_000_000_000 }),
      }),
      fc.record({
        kind: fc.constant("symlink" as const),
        target: fc.constantFrom("a", "../b", "/etc/passwd", "dd/e.txt"),
      }),
      fc.record({ kind: fc.constant("hardlink" as const), to: fc.nat(20) }),
    ),
  }),
  { maxLength: 25 },
);

/** Writes the spec, skipping paths that clash with earlier ones (a file used as a directory). */
async function build(root: string, entries: readonly { path: string[]; node: Kind }[]): Promise<void> {
  const kinds = new Map<string, Kind["kind"]>();
  const files: string[] = [];
  const dirTimes: [string, number][] = [];
  for (const { path, node } of entries) {
    const rel = path.join("/");
    const parents = path.slice(0, -1).map((_, i) => path.slice(0, i + 1).join("/"));
    if (kinds.has(rel) || parents.some((p) => kinds.has(p) && kinds.get(p) !== "dir")) continue;
    for (const p of parents) if (!kinds.has(p)) kinds.set(p, "dir");
    await mkdir(join(root, ...path.slice(0, -1)), { recursive: true });
    const host = join(root, rel);
    if (node.kind === "file") {
      await writeFile(host, node.content);
      await lchown(host, node.uid, node.uid);
      await chmod(host, node.mode);
      await utimes(host, node.mtime, node.mtime);
      files.push(rel);
    } else if (node.kind === "dir") {
      await mkdir(host);
      await lchown(host, node.uid, node.uid);
      await chmod(host, node.mode);
      dirTimes.push([host, node.mtime]);
    } else if (node.kind === "symlink") await symlink(node.target, host);
    else {
      if (files.length === 0) continue;
      await link(join(root, files[node.to % files.length]!), host);
    }
    kinds.set(rel, node.kind);
  }
  for (const [host, t] of dirTimes.reverse()) await utimes(host, t, t);
}

describe("copy action on random trees", () => {
  const temp = new TempDirs();
  afterEach(() => temp.cleanup());

  it("produces a tree equal to its source, with an equal content checksum", async () => {
    await fc.assert(
      fc.asyncProperty(spec, async (entries) => {
        const src = await temp.make();
        const dest = await temp.make();
        try {
          await chmod(src, 0o755);
          await build(src, entries as { path: string[]; node: Kind }[]);
          await executeFileAction(copyAction({ src: "/", dest: "/out/" }), { srcRoot: src, destRoot: dest });
          const before = await readTree(src, { mtimes: true });
          const after = await readTree(join(dest, "out"), { mtimes: true });
          // The destination directory itself is made by the copy; only its contents come from the source.
          delete before["."];
          delete after["."];
          assert.deepEqual(after, before);
          await chmod(join(dest, "out"), 0o755);
          assert.equal(await contentChecksum(join(dest, "out")), await contentChecksum(src));
        } finally {
          await temp.cleanup();
        }
      }),
      { numRuns: 40 },
    );
  }).timeout(60_000);
});
