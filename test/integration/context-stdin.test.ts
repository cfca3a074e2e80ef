import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { newBuildRequest } from "../../src/client/build-request.js";
import { prepareBuildContext } from "../../src/client/context-source.js";
import { type ArchiveCompression, detectArchive, readStdinContext } from "../../src/client/context-stdin.js";
import { runBuild } from "../../src/client/run-build.js";
import { type Engine, openEngine } from "../../src/engine/engine.js";

/** Real archivers: a tar made by tar(1), compressed by each format's own program. */
function archive(dir: string, compression: ArchiveCompression): Buffer {
  const tar = execFileSync("tar", ["-C", dir, "-cf", "-", "."]);
  const program = { none: undefined, gzip: "gzip", bzip2: "bzip2", xz: "xz", zstd: "zstd" }[compression];
  return program ? execFileSync(program, ["-c"], { input: tar }) : tar;
}

/** Streams `data` in small pieces, so that the head is assembled from several reads. */
function stdinOf(data: Buffer): Readable {
  const pieces: Buffer[] = [];
  for (let i = 0; i < data.length; i += 300) pieces.push(data.subarray(i, i + 300));
  return Readable.from(pieces);
}

async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

describe("build contexts on stdin (kiln build -)", function () {
  this.timeout(120_000);
  let work: string;
  let src: string;
  beforeEach(async () => {
    work = await mkdtemp(join(tmpdir(), "kiln-stdin-ctx-"));
    src = join(work, "src");
    await writeTree(src, {
      Dockerfile: "FROM scratch\nCOPY . /\n",
      "app/main.txt": "from the archive\n",
    });
  });
  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  for (const compression of ["none", "gzip", "bzip2", "xz", "zstd"] as const) {
    it(`unpacks a ${compression === "none" ? "plain" : compression} tar from stdin into the context directory`, async () => {
      const out = join(work, "out");
      await mkdir(out);
      const content = await readStdinContext(stdinOf(archive(src, compression)), out);
      assert.deepEqual(content, { kind: "archive", compression });
      assert.equal(await readFile(join(out, "app", "main.txt"), "utf8"), "from the archive\n");
    });
  }

  it("takes stdin that is no archive for a Dockerfile, with an empty context", async () => {
    const dockerfile = "FROM scratch\nLABEL from=stdin\n";
    const prepared = await prepareBuildContext(newBuildRequest("-"), {
      stdin: stdinOf(Buffer.from(dockerfile)),
    });
    try {
      assert.equal(prepared.request.dockerfileText, dockerfile);
      assert.ok(prepared.localDir);
      assert.deepEqual(await readdir(prepared.localDir), []);
    } finally {
      await prepared.dispose();
    }
  });

  it("tells a tar from text by its header checksum, not by its length", () => {
    const tar = archive(src, "none");
    assert.equal(detectArchive(tar.subarray(0, 512)), "none");
    const corrupted = Buffer.from(tar.subarray(0, 512));
    corrupted[0] = corrupted[0]! ^ 0xff;
    assert.equal(detectArchive(corrupted), undefined);
    assert.equal(detectArchive(Buffer.alloc(1024, "# a Dockerfile comment that is long\n")), undefined);
  });

  it("reads -f as a path inside the archive, with that Dockerfile's own ignore file", async () => {
    await writeTree(src, {
      "build/app.Dockerfile": "FROM scratch\nCOPY app /app\n",
      "build/app.Dockerfile.dockerignore": "app/secret.txt\n",
      ".dockerignore": "app\n",
    });
    const prepared = await prepareBuildContext(
      newBuildRequest("-", { dockerfilePath: "build/app.Dockerfile" }),
      {
        stdin: stdinOf(archive(src, "gzip")),
      },
    );
    try {
      assert.equal(prepared.request.dockerfileText, "FROM scratch\nCOPY app /app\n");
      assert.equal(prepared.request.dockerfileName, "build/app.Dockerfile");
      assert.deepEqual(prepared.request.dockerignore, ["app/secret.txt"]);
    } finally {
      await prepared.dispose();
    }
  });

  it("names the missing file when -f is not in the archive", async () => {
    await assert.rejects(
      prepareBuildContext(newBuildRequest("-", { dockerfilePath: "nope/Dockerfile" }), {
        stdin: stdinOf(archive(src, "none")),
      }),
      /nope\/Dockerfile is not in the context archive on stdin/,
    );
  });

  it("refuses a Dockerfile on stdin together with -f as ambiguous", async () => {
    await assert.rejects(
      prepareBuildContext(newBuildRequest("-", { dockerfilePath: "Dockerfile" }), {
        stdin: stdinOf(Buffer.from("FROM scratch\n")),
      }),
      /ambiguous Dockerfile source/,
    );
  });

  it("reports a damaged compressed archive as a context that could not be unpacked", async () => {
    const xz = archive(src, "xz");
    const damaged = Buffer.concat([xz.subarray(0, 64), Buffer.alloc(256, 0x55)]);
    const out = join(work, "out");
    await mkdir(out);
    await assert.rejects(
      readStdinContext(stdinOf(damaged), out),
      /failed to unpack the build context from stdin \(a xz-compressed tar\)/,
    );
  });

  it("refuses an archive entry that would land outside the context directory", async () => {
    const evil = join(work, "evil");
    await writeTree(evil, { "x.txt": "escape\n" });
    const tar = execFileSync("tar", ["-C", evil, "-cf", "-", "--transform", "s,^x.txt,../x.txt,", "x.txt"]);
    const out = join(work, "out");
    await mkdir(out);
    await assert.rejects(
      readStdinContext(stdinOf(tar), out),
      /failed to unpack the build context from stdin/,
    );
    await assert.rejects(readFile(join(work, "x.txt")));
  });

  describe("built by the engine", () => {
    let state: string;
    let engine: Engine;
    before(async () => {
      state = await mkdtemp(join(tmpdir(), "kiln-stdin-engine-"));
      engine = await openEngine({ stateDir: state });
    });
    after(async () => {
      await engine.close();
      await rm(state, { recursive: true, force: true });
    });

    it("builds an image whose files come from a bzip2 tar on stdin", async () => {
      const dest = join(work, "rootfs");
      const req = newBuildRequest("-", { outputs: [{ type: "local", dest, attrs: {} }] });
      await runBuild(req, {
        onProgress: () => {},
        signal: new AbortController().signal,
        stdout: process.stdout,
        stdin: stdinOf(archive(src, "bzip2")),
        nodes: (_req, fn) => fn({ builder: "test", nodes: [{ name: "local", platforms: [], engine }] }),
      });
      assert.equal(await readFile(join(dest, "app", "main.txt"), "utf8"), "from the archive\n");
    });
  });
});
