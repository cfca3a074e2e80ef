// The engine daemon API end to end: builds over a unix socket, TCP with mutual TLS and a byte
// stream joined by dial-stdio, against an echo engine that exercises every session callback.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex, PassThrough, Transform } from "node:stream";
import * as grpc from "@grpc/grpc-js";
import { type BuildRequest, newBuildRequest } from "../../src/client/build-request.js";
import { RemoteBuildError } from "../../src/client/remote-build-error.js";
import { connectEngine, type RemoteEngine } from "../../src/client/remote-engine.js";
import { hostPlatform } from "../../src/oci/platform.js";
import { dialStdio } from "../../src/server/dial-stdio.js";
import { engineServiceClient } from "../../src/server/engine-proto.js";
import { type EngineServer, serveEngine } from "../../src/server/engine-server.js";
import { LocalSession } from "../../src/session/local-session.js";
import type { ProgressEvent } from "../../src/solver/progress.js";
import { syncLocalContext } from "../../src/source/local-sync.js";
import { ECHO_VERTEX, EchoArg, EchoEngine, echoExportBytes, treeDigest } from "../support/echo-engine.js";

interface Pki {
  ca: Buffer;
  serverCert: Buffer;
  serverKey: Buffer;
  clientCert: Buffer;
  clientKey: Buffer;
  /** A client certificate and key signed by a different CA. */
  strangerCert: Buffer;
  strangerKey: Buffer;
}

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

function newCa(dir: string, name: string): void {
  openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "1",
    "-subj",
    `/CN=${name}`,
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.pem`,
  ]);
}

function signedCert(dir: string, ca: string, name: string, ext: string): void {
  openssl(dir, [
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-subj",
    `/CN=${name}`,
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
  ]);
  execFileSync("sh", ["-c", `printf '%b' "${ext}" > ${name}.ext`], { cwd: dir });
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.pem`,
    "-CAkey",
    `${ca}.key`,
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    `${name}.ext`,
    "-out",
    `${name}.pem`,
  ]);
}

/** A CA with a server certificate for 127.0.0.1/localhost and a client certificate, plus a stranger's CA and client. */
async function makePki(dir: string): Promise<Pki> {
  await mkdir(dir, { recursive: true });
  newCa(dir, "ca");
  newCa(dir, "otherca");
  signedCert(
    dir,
    "ca",
    "server",
    "subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n",
  );
  signedCert(dir, "ca", "client", "extendedKeyUsage=clientAuth\\n");
  signedCert(dir, "otherca", "stranger", "extendedKeyUsage=clientAuth\\n");
  const read = (f: string) => readFile(join(dir, f));
  return {
    ca: await read("ca.pem"),
    serverCert: await read("server.pem"),
    serverKey: await read("server.key"),
    clientCert: await read("client.pem"),
    clientKey: await read("client.key"),
    strangerCert: await read("stranger.pem"),
    strangerKey: await read("stranger.key"),
  };
}

/** A unix socket server that answers every connection with its input in upper case. */
async function startUpperCaseAgent(path: string): Promise<Server> {
  const server = createServer((conn) => {
    conn.on("data", (d: Buffer) => conn.write(d.toString("utf8").toUpperCase()));
    conn.on("end", () => conn.end());
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return server;
}

/** `count` files of `size` random bytes in nested directories, plus a symlink and an executable. */
async function makeContext(dir: string, count: number, size: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    const sub = join(dir, `d${i % 50}`);
    await mkdir(sub, { recursive: true });
    await writeFile(join(sub, `f${i}.bin`), randomBytes(size));
  }
  await writeFile(join(dir, "run.sh"), "#!/bin/sh\necho hi\n", { mode: 0o755 });
  execFileSync("ln", ["-s", "run.sh", join(dir, "link")]);
}

const ECHO_IGNORE = ["*.tmp", "**/*.tmp"];

interface EchoClient {
  request: BuildRequest;
  session: LocalSession;
}

/** A request and client session with a secret, an SSH agent and a file output, for the echo engine. */
function echoClient(opts: {
  context: string;
  agentSocket: string;
  output: string;
  buildArgs?: Record<string, string>;
}): EchoClient {
  const request = newBuildRequest(opts.context, {
    buildArgs: opts.buildArgs ?? {},
    secrets: [
      { id: "token", source: { kind: "env", name: "ECHO_TOKEN" } },
      { id: "absent", source: { kind: "env", name: "ECHO_NOT_SET" } },
    ],
    ssh: [{ id: "default", paths: [opts.agentSocket] }],
    outputs: [{ type: "tar", dest: opts.output, attrs: {} }],
    dockerignore: ECHO_IGNORE,
  });
  return { request, session: new LocalSession({ request, env: { ECHO_TOKEN: "s3cret value" } }) };
}

interface Fixture {
  work: string;
  context: string;
  agentSocket: string;
  agent: Server;
}

async function runEchoBuild(
  engine: RemoteEngine,
  f: Fixture,
  buildArgs: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<{ outcome: Awaited<ReturnType<RemoteEngine["build"]>>; events: ProgressEvent[]; output: string }> {
  const output = join(f.work, `out-${randomBytes(4).toString("hex")}.bin`);
  const { request, session } = echoClient({
    context: f.context,
    agentSocket: f.agentSocket,
    output,
    buildArgs,
  });
  const events: ProgressEvent[] = [];
  const outcome = await engine.build(request, session, { onProgress: (e) => events.push(e), signal });
  return { outcome, events, output };
}

/** The tree an in-process sync of `context` (with the echo client's ignore rules) produces. */
async function inProcessSyncDigest(work: string, context: string): Promise<string> {
  const dest = join(await mkdtemp(join(work, "inproc-")), "copy");
  await syncLocalContext(context, dest, { exclude: ECHO_IGNORE });
  return treeDigest(dest);
}

/** Asserts that each session callback and the progress stream crossed intact. */
async function assertEchoedIntact(
  f: Fixture,
  run: Awaited<ReturnType<typeof runEchoBuild>>,
  exportBytes: number,
): Promise<void> {
  const m = run.outcome.metadata as Record<string, unknown>;
  assert.equal(
    m.tree,
    await inProcessSyncDigest(f.work, f.context),
    "the engine's copy is what an in-process sync makes",
  );
  assert.deepEqual(m.secrets, { token: "s3cret value", absent: null });
  assert.deepEqual(
    m.ssh,
    { default: "PING DEFAULT" },
    "the engine's bytes reached the client's agent and its answer came back",
  );
  assert.deepEqual(m.hasSsh, { default: true });
  const expected = createHash("sha256").update(echoExportBytes(exportBytes)).digest("hex");
  assert.equal(m.exportSha256, expected);
  assert.equal(
    createHash("sha256")
      .update(await readFile(run.output))
      .digest("hex"),
    expected,
    "the client stored the export byte for byte",
  );
  assert.deepEqual(run.outcome.warnings, ["echo warning"]);
  assert.equal(run.outcome.imageId, `sha256:${"1".repeat(64)}`);
  assert.equal(run.outcome.report, "echo report");
  const log = run.events.find((e) => e.type === "log");
  assert.ok(log && log.type === "log");
  assert.deepEqual([...log.data], [0, 1, 2, 255]);
  assert.equal(log.stream, 2);
  assert.deepEqual(
    run.events.find((e) => e.type === "warning"),
    {
      type: "warning",
      vertex: ECHO_VERTEX,
      message: "echo warning",
      detail: "detail",
      location: { file: "Dockerfile", line: 3 },
    },
  );
  const status = run.events.find((e) => e.type === "status");
  assert.deepEqual(status && { ...status, timestamp: 0 }, {
    type: "status",
    vertex: ECHO_VERTEX,
    id: "bytes",
    name: "exporting",
    current: 5,
    total: 10,
    timestamp: 0,
  });
  const vertices = run.events.filter((e) => e.type === "vertex");
  assert.equal(vertices.length, 2);
  assert.ok(vertices[1]!.type === "vertex" && vertices[1]!.completed! >= vertices[0]!.started!);
  assert.equal(
    vertices[0]!.type === "vertex" && "completed" in vertices[0]!,
    false,
    "unset optional fields stay unset",
  );
}

describe("engine daemon API", function () {
  this.timeout(60_000);
  const f = {} as Fixture;
  let engineState: string;

  before(async () => {
    f.work = await mkdtemp(join(tmpdir(), "kiln-daemon-"));
    f.context = join(f.work, "ctx");
    await makeContext(f.context, 20, 3000);
    await writeFile(join(f.context, "ignored.tmp"), "not sent");
    f.agentSocket = join(f.work, "agent.sock");
    f.agent = await startUpperCaseAgent(f.agentSocket);
  });
  after(async () => {
    await new Promise((r) => f.agent.close(r));
    await rm(f.work, { recursive: true, force: true });
  });
  beforeEach(async () => {
    engineState = await mkdtemp(join(f.work, "engine-"));
  });

  describe("over a unix socket", () => {
    let echo: EchoEngine;
    let server: EngineServer;
    let engine: RemoteEngine;
    let socket: string;
    beforeEach(async () => {
      echo = new EchoEngine(engineState);
      socket = join(engineState, "kilnd.sock");
      server = await serveEngine(echo, { unix: socket });
      engine = await connectEngine({ unix: socket });
    });
    afterEach(async () => {
      await engine.close();
      await server.close();
    });

    it("carries the context, secrets, SSH agent bytes, a 3 MB export and progress of a build intact", async () => {
      const run = await runEchoBuild(engine, f, { [EchoArg.exportBytes]: String(3_000_000) });
      await assertEchoedIntact(f, run, 3_000_000);
    });

    it("creates its socket with mode 0600", async () => {
      const st = await stat(socket);
      assert.ok(st.isSocket());
      assert.equal(st.mode & 0o777, 0o600);
    });

    it("answers Info, DiskUsage, Prune and ListWorkers with the engine's values", async () => {
      assert.deepEqual(await engine.info(), await echo.info());
      const usage = await engine.diskUsage(["type==regular", "shared"]);
      assert.deepEqual(usage, await echo.diskUsage(["type==regular", "shared"]));
      assert.deepEqual(await engine.prune({ all: true, filters: ["until=1h"], keepStorage: 1000 }), {
        reclaimedBytes: 4096,
        removed: 1,
      });
      assert.deepEqual(echo.lastPrune, { all: true, filters: ["until=1h"], keepStorage: 1000 });
      const [worker] = await engine.listWorkers();
      assert.equal(worker?.labels["kiln.worker.snapshotter"], "echo");
      assert.deepEqual(worker?.platforms, [
        hostPlatform(),
        { os: "linux", architecture: "arm", variant: "v7" },
      ]);
    });

    it("reports a failed build's message unchanged, as a build failure", async () => {
      await assert.rejects(
        runEchoBuild(engine, f, { [EchoArg.fail]: "RUN make: exit code 2\nsecond line" }),
        (err: unknown) => {
          assert.ok(err instanceof RemoteBuildError);
          assert.equal(err.kind, "build-failed");
          assert.equal(err.message, "RUN make: exit code 2\nsecond line");
          return true;
        },
      );
    });

    it("delivers the client's cancellation to the engine's signal within a second", async () => {
      const abort = new AbortController();
      const output = join(f.work, "cancelled.bin");
      const { request, session } = echoClient({
        context: f.context,
        agentSocket: f.agentSocket,
        output,
        buildArgs: { [EchoArg.waitForCancel]: "1" },
      });
      let cancelledAt = 0;
      const build = engine.build(request, session, {
        signal: abort.signal,
        onProgress: (e) => {
          if (e.type === "warning" && !cancelledAt) {
            cancelledAt = Date.now();
            abort.abort();
          }
        },
      });
      await assert.rejects(
        build,
        (err: unknown) => err instanceof RemoteBuildError && err.kind === "cancelled",
      );
      assert.ok(echo.abortedAt, "the engine's signal fired");
      assert.ok(
        echo.abortedAt - cancelledAt < 1000,
        `the signal fired ${echo.abortedAt - cancelledAt} ms after the cancel`,
      );
    });

    it("cancels a running build when the client goes away", async () => {
      const { request, session } = echoClient({
        context: f.context,
        agentSocket: f.agentSocket,
        output: join(f.work, "gone.bin"),
        buildArgs: { [EchoArg.waitForCancel]: "1" },
      });
      let started!: () => void;
      const running = new Promise<void>((r) => (started = r));
      const build = engine.build(request, session, { onProgress: () => started() });
      build.catch(() => {});
      await running;
      const closedAt = Date.now();
      await engine.close();
      for (let i = 0; i < 100 && !echo.abortedAt; i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(
        echo.abortedAt && echo.abortedAt - closedAt < 1000,
        "the engine's signal fired after the client closed its connection",
      );
      engine = await connectEngine({ unix: socket });
    });

    it("refuses to listen on a socket another server is already serving", async () => {
      await assert.rejects(serveEngine(echo, { unix: socket }), /another kilnd is already serving it/);
    });
  });

  describe("over TCP with mutual TLS", () => {
    let pki: Pki;
    let server: EngineServer;
    let echo: EchoEngine;
    before(async () => {
      pki = await makePki(join(f.work, "pki"));
    });
    beforeEach(async () => {
      echo = new EchoEngine(engineState);
      server = await serveEngine(echo, {
        tcp: { host: "127.0.0.1", port: 0, tls: { ca: pki.ca, cert: pki.serverCert, key: pki.serverKey } },
      });
    });
    afterEach(() => server.close());

    it("serves a build and Info to a client whose certificate the CA signed", async () => {
      const engine = await connectEngine({
        tcp: { host: "127.0.0.1", port: server.tcpPort! },
        tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
      });
      try {
        assert.equal((await engine.info()).snapshotter, "echo");
        await assertEchoedIntact(
          f,
          await runEchoBuild(engine, f, { [EchoArg.exportBytes]: "100000" }),
          100_000,
        );
      } finally {
        await engine.close();
      }
    });

    /** Info through a plain gRPC client with the given credentials: how the server treats the handshake. */
    function rawInfo(credentials: grpc.ChannelCredentials): Promise<unknown> {
      const Client = engineServiceClient();
      const client = new Client(`127.0.0.1:${server.tcpPort}`, credentials) as unknown as grpc.Client & {
        Info(
          req: object,
          opts: grpc.CallOptions,
          cb: (err: grpc.ServiceError | null, res: unknown) => void,
        ): void;
      };
      return new Promise<unknown>((resolve, reject) =>
        client.Info({}, { deadline: Date.now() + 5000 }, (err, res) => {
          client.close();
          err ? reject(err) : resolve(res);
        }),
      );
    }

    it("refuses a client that presents no certificate", async () => {
      await assert.rejects(
        rawInfo(grpc.credentials.createSsl(pki.ca)),
        (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE,
      );
    });

    it("refuses a client whose certificate another CA signed", async () => {
      await assert.rejects(
        rawInfo(grpc.credentials.createSsl(pki.ca, pki.strangerKey, pki.strangerCert)),
        (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE,
      );
      await assert.rejects(
        connectEngine(
          {
            tcp: { host: "127.0.0.1", port: server.tcpPort! },
            tls: { ca: pki.ca, cert: pki.strangerCert, key: pki.strangerKey },
          },
          { timeoutMs: 1500 },
        ),
        /cannot reach the engine at tcp:\/\/127\.0\.0\.1/,
      );
    });

    it("refuses plaintext connections", async () => {
      await assert.rejects(
        rawInfo(grpc.credentials.createInsecure()),
        (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE,
      );
    });
  });

  describe("over a byte stream joined to the socket by dial-stdio", () => {
    let echo: EchoEngine;
    let server: EngineServer;
    let socket: string;
    let bytesUp = 0;
    const stdioStream = () => {
      const stdin = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          bytesUp += chunk.length;
          callback(null, chunk);
        },
      });
      const stdout = new PassThrough();
      dialStdio({ kind: "unix", path: socket }, stdin, stdout).then(
        () => stdout.end(),
        (err) => stdout.destroy(err),
      );
      return Duplex.from({ readable: stdout, writable: stdin });
    };
    beforeEach(async () => {
      echo = new EchoEngine(engineState);
      socket = join(engineState, "kilnd.sock");
      server = await serveEngine(echo, { unix: socket });
    });
    afterEach(() => server.close());

    it("carries a build intact", async () => {
      const engine = await connectEngine({ duplex: stdioStream });
      try {
        await assertEchoedIntact(
          f,
          await runEchoBuild(engine, f, { [EchoArg.exportBytes]: "1000000" }),
          1_000_000,
        );
      } finally {
        await engine.close();
      }
    });

    it("sends a 5,000-file context's contents on the first sync only, and then just what changed", async function () {
      this.timeout(120_000);
      const big = join(f.work, "big-ctx");
      await makeContext(big, 5000, 2048);
      const engine = await connectEngine({ duplex: stdioStream });
      let expectedTree = await inProcessSyncDigest(f.work, big);
      const build = async () => {
        const before = bytesUp;
        const { outcome } = await runEchoBuild(engine, { ...f, context: big });
        const m = outcome.metadata as { sync: { copied: number; files: number }; tree: string };
        assert.equal(m.tree, expectedTree, "the engine's copy is what an in-process sync makes");
        return { sync: m.sync, bytes: bytesUp - before };
      };
      try {
        const first = await build();
        assert.ok(first.sync.copied >= 5000);
        assert.ok(first.bytes > 5000 * 2048, `the first sync sent ${first.bytes} bytes`);
        const second = await build();
        assert.equal(second.sync.copied, 0);
        assert.ok(
          second.bytes < first.bytes / 10,
          `the second sync sent ${second.bytes} bytes, the first ${first.bytes}`,
        );
        assert.ok(second.bytes < (5000 * 2048) / 10, "no file contents crossed on the second sync");
        await writeFile(join(big, "d7", "f7.bin"), randomBytes(2048));
        expectedTree = await inProcessSyncDigest(f.work, big);
        const third = await build();
        assert.equal(third.sync.copied, 1);
        assert.ok(third.bytes - second.bytes < 10_000, "only the changed file's bytes were added");
      } finally {
        await engine.close();
        await rm(big, { recursive: true, force: true });
      }
    });
  });
});
