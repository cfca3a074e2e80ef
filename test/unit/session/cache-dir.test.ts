// Local cache directories served by the client over a build stream: an engine's RemoteSession and
// a client's SessionResponder joined by in-memory queues, the client being a real LocalSession on
// this machine's disk.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { type BuildRequest, newBuildRequest } from "../../../src/client/build-request.js";
import type { BuildClientMessage, BuildServerMessage } from "../../../src/server/engine-proto.js";
import type { CacheDirAccess } from "../../../src/session/cache-dir.js";
import { describeSession, SessionResponder } from "../../../src/session/grpc-client-session.js";
import { RemoteSession } from "../../../src/session/grpc-engine-session.js";
import { LocalSession } from "../../../src/session/local-session.js";

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/** Both ends of a build stream; client messages wait while the engine holds its input, as gRPC's do. */
function connect(request: BuildRequest) {
  const client = new LocalSession({ request });
  const toEngine: BuildClientMessage[] = [];
  let holds = 0;
  let maxHolds = 0;
  let engine!: RemoteSession;
  const deliver = () => {
    while (holds === 0 && toEngine.length) engine.handle(toEngine.shift()!);
  };
  const responder = new SessionResponder(client, {
    send: (m) => {
      toEngine.push(m);
      setImmediate(deliver);
      return true;
    },
    drained: async () => {},
  });
  engine = new RemoteSession(describeSession(client, request), {
    send: (m: BuildServerMessage) => setImmediate(() => responder.handle(m)),
    holdInput: () => {
      holds++;
      maxHolds = Math.max(maxHolds, holds);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        holds--;
        setImmediate(deliver);
      };
    },
  });
  return {
    files: engine.cacheDirs as CacheDirAccess,
    held: () => maxHolds > 0,
  };
}

describe("local cache directories served by the client over the build stream", () => {
  let root: string;
  let dest: string;
  let src: string;
  let request: BuildRequest;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "kiln-cache-dir-"));
    dest = join(root, "to");
    src = join(root, "from");
    await mkdir(dest);
    request = newBuildRequest(root, {
      cacheTo: [{ type: "local", attrs: { dest } }],
      cacheFrom: [{ type: "local", attrs: { src } }],
    });
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it("writes a large file into a --cache-to directory on the client's disk and reads it back intact", async () => {
    const { files } = connect(request);
    const data = randomBytes(5 * 1024 * 1024 + 17);
    const { stream, done } = await files.openWrite(dest, "blobs/sha256/abc");
    stream.end(data);
    await done;
    assert.ok((await readFile(join(dest, "blobs", "sha256", "abc"))).equals(data));
    assert.deepEqual(await files.list(dest, "blobs/sha256"), ["abc"]);
    const back = await files.read(dest, "blobs/sha256/abc");
    assert.ok(back && (await readAll(back)).equals(data));
  });

  it("pauses the engine's input while a reader is behind, and resumes it as the reader reads", async () => {
    const { files, held } = connect(request);
    const data = randomBytes(4 * 1024 * 1024);
    await writeFile(join(dest, "big"), data);
    const stream = await files.read(dest, "big");
    assert.ok(stream);
    // Nobody reads for a while: the engine must hold the client's messages rather than buffer them all.
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(held(), "the engine held its input");
    assert.ok((await readAll(stream)).equals(data));
  });

  it("answers a missing file as absent, not as an error", async () => {
    const { files } = connect(request);
    assert.equal(await files.read(src, "index.json"), undefined);
    assert.equal(await files.exists(src, "index.json"), false);
    assert.deepEqual(await files.list(src, "blobs/sha256"), []);
  });

  it("refuses to write or remove in a --cache-from directory", async () => {
    const { files } = connect(request);
    await assert.rejects(files.openWrite(src, "index.json"), /may only read it/);
    await assert.rejects(files.remove(src, "index.json"), /may only read it/);
  });

  it("refuses a directory the build request did not name", async () => {
    const { files } = connect(request);
    await assert.rejects(files.read(root, "to/index.json"), /did not name .* as a local cache directory/);
  });

  for (const bad of ["../escape", "/etc/passwd", "blobs/../../x", "a//b"])
    it(`refuses a path that could leave the directory: ${JSON.stringify(bad)}`, async () => {
      const { files } = connect(request);
      await assert.rejects(files.exists(dest, bad), /invalid path in a cache directory/);
    });

  it("leaves neither the file nor a temp file behind when the engine abandons a write", async () => {
    const { files } = connect(request);
    const { stream, done } = await files.openWrite(dest, "index.json");
    stream.on("error", () => {});
    stream.write(Buffer.from('{"schemaVer'));
    stream.destroy(new Error("export failed"));
    await assert.rejects(done, /export failed/);
    assert.deepEqual(await readdir(dest), []);
  });
});
