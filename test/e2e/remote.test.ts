// A remote builder over mutual TLS through the real Docker CLI plugin path: a real kilnd
// (dist/kilnd.js) listening on a loopback TCP port with certificates made here with openssl,
// `docker kiln create --driver remote tcp://…`, builds on it (the client's files, outputs and
// registry credentials travel over the session), and a client whose certificate the engine does
// not trust, refused promptly and in words.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DOCKER_CLI, installDockerKiln } from "../support/docker-kiln.js";
import { loadWorld, REPO_ROOT, registryLoginConfig } from "../support/world.js";

const KILND = join(REPO_ROOT, "dist", "kilnd.js");
const world = loadWorld();

/** A port nothing listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A CA, and certificates it signs, made with openssl in `dir`. */
function makeCerts(dir: string): void {
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ca = (name: string) =>
    openssl(
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
    );
  const signed = (name: string, by: string, ext: string) => {
    openssl(
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${name}`,
    );
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${by}.pem`,
      "-CAkey",
      `${by}.key`,
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
    );
  };
  ca("ca");
  signed("daemon", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  signed("client", "ca", "extendedKeyUsage=clientAuth\n");
  // A well-formed client certificate from a CA the daemon was not told to trust.
  ca("other-ca");
  signed("stranger", "other-ca", "extendedKeyUsage=clientAuth\n");
}

describe("remote builder over mutual TLS through `docker kiln` (a real kilnd)", function () {
  this.timeout(300_000);
  const id = randomBytes(3).toString("hex");
  const builder = `kilne2eremote${id}`;
  const stranger = `kilne2estranger${id}`;
  const pushRef = `${world.registryTls}/kiln-e2e-remote-${id}:1`;
  let dir: string;
  let certs: string;
  let ctx: string;
  let env: NodeJS.ProcessEnv;
  let endpoint: string;
  let kilnd: ChildProcess | undefined;
  let kilndLog = "";

  const run = (args: string[]) => spawnSync(DOCKER_CLI, ["kiln", ...args], { env, encoding: "utf8" });
  const kiln = (args: string[]) => {
    const r = run(args);
    if (r.status !== 0)
      assert.fail(`docker kiln ${args.join(" ")} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
    return `${r.stdout}${r.stderr}`;
  };
  const tlsOpts = (cert: string) =>
    `cacert=${join(certs, "ca.pem")},cert=${join(certs, `${cert}.pem`)},key=${join(certs, `${cert}.key`)}`;

  before(async function () {
    this.timeout(300_000);
    if (!existsSync(KILND)) execFileSync("npm", ["run", "build"], { cwd: REPO_ROOT, stdio: "pipe" });
    dir = mkdtempSync(join(tmpdir(), "kiln-e2e-remote-"));
    certs = join(dir, "certs");
    mkdirSync(certs);
    makeCerts(certs);
    env = installDockerKiln(dir).env;
    writeFileSync(join(env.DOCKER_CONFIG!, "config.json"), JSON.stringify(registryLoginConfig(world)));
    ctx = join(dir, "ctx");
    mkdirSync(ctx);
    writeFileSync(join(ctx, "message.txt"), "sent by the client\n");
    writeFileSync(
      join(ctx, "Dockerfile"),
      [
        `FROM ${world.busyboxTls} AS build`,
        "COPY message.txt /in/message.txt",
        "RUN tr a-z A-Z < /in/message.txt > /shout",
        `FROM ${world.busybox}`,
        "COPY --from=build /shout /shout",
        "RUN cat /shout /shout > /twice",
        "",
      ].join("\n"),
    );

    const port = await freePort();
    endpoint = `tcp://127.0.0.1:${port}`;
    // Without a credentials file of its own: the registry login reaches it only from the client.
    const daemonEnv = { ...process.env, DOCKER_CONFIG: join(dir, "daemon-docker-config") };
    kilnd = spawn(
      process.execPath,
      [
        KILND,
        "--root",
        join(dir, "kilnd-state"),
        "--addr",
        endpoint,
        "--tlscacert",
        join(certs, "ca.pem"),
        "--tlscert",
        join(certs, "daemon.pem"),
        "--tlskey",
        join(certs, "daemon.key"),
      ],
      { env: daemonEnv, stdio: ["ignore", "pipe", "pipe"] },
    );
    kilnd.stdout!.setEncoding("utf8").on("data", (d: string) => (kilndLog += d));
    kilnd.stderr!.setEncoding("utf8").on("data", (d: string) => (kilndLog += d));
    const started = Date.now();
    while (!kilndLog.includes(`listening on ${endpoint}`)) {
      if (kilnd.exitCode !== null) assert.fail(`kilnd exited ${kilnd.exitCode}:\n${kilndLog}`);
      if (Date.now() - started > 30_000) assert.fail(`kilnd did not start listening:\n${kilndLog}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  after(async () => {
    if (kilnd && kilnd.exitCode === null) {
      const exited = new Promise((r) => kilnd!.once("exit", r));
      kilnd.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
      if (kilnd.exitCode === null) kilnd.kill("SIGKILL");
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("creates a remote builder on the tcp:// endpoint with the client's certificate", () => {
    const out = kiln([
      "create",
      "--name",
      builder,
      "--driver",
      "remote",
      "--driver-opt",
      tlsOpts("client"),
      "--bootstrap",
      endpoint,
    ]);
    assert.match(out, new RegExp(`^${builder}$`, "m"));
    assert.doesNotMatch(out, /DeprecationWarning/);
    assert.match(
      kiln(["ls"]),
      new RegExp(`^ \\\\_ ${builder}0\\s+\\\\_ ${endpoint.replace(/\./g, "\\.")}\\s+running\\s`, "m"),
    );
  });

  it("builds a multi-stage Dockerfile on it, with the result exported to the client's disk", () => {
    const out = join(dir, "out");
    const log = kiln([
      "--builder",
      builder,
      "build",
      "--progress=plain",
      "-o",
      `type=local,dest=${out}`,
      ctx,
    ]);
    assert.match(log, /RUN tr a-z A-Z/);
    assert.doesNotMatch(log, /DeprecationWarning/);
    assert.equal(readFileSync(join(out, "twice"), "utf8"), "SENT BY THE CLIENT\nSENT BY THE CLIENT\n");
  });

  it("pushes to the HTTPS registry with the credentials of the client, not of the engine's host", () => {
    const metadata = join(dir, "metadata.json");
    const log = kiln([
      "--builder",
      builder,
      "build",
      "--push",
      "-t",
      pushRef,
      "--metadata-file",
      metadata,
      ctx,
    ]);
    const digest = JSON.parse(readFileSync(metadata, "utf8"))["containerimage.digest"] as string;
    const inspected = JSON.parse(
      execFileSync(
        "skopeo",
        [
          "inspect",
          "--creds",
          `${world.registryUser}:${world.registryPassword}`,
          "--cert-dir",
          `/etc/docker/certs.d/${world.registryTls}`,
          `docker://${pushRef}`,
        ],
        { encoding: "utf8" },
      ),
    );
    assert.equal(inspected.Digest, digest);
    for (const text of [log, kilndLog])
      assert.ok(!text.includes(world.registryPassword), "the password appears in no output or log");
  });

  it("refuses a client whose certificate the engine does not trust, at once and saying why", () => {
    const started = Date.now();
    const created = run([
      "create",
      "--name",
      stranger,
      "--driver",
      "remote",
      "--driver-opt",
      tlsOpts("stranger"),
      "--bootstrap",
      endpoint,
    ]);
    assert.notEqual(created.status, 0);
    const build = run(["--builder", stranger, "build", ctx]);
    assert.equal(build.status, 1);
    for (const r of [created, build]) {
      assert.match(
        r.stderr,
        new RegExp(
          `cannot reach the engine at ${endpoint.replace(/\./g, "\\.")}: the engine refused this client's TLS certificate`,
        ),
      );
      assert.doesNotMatch(r.stderr, /DeprecationWarning|Failed to connect before the deadline/);
    }
    assert.ok(Date.now() - started < 15_000, "refused without waiting for a connection timeout");
    assert.match(kiln(["ls"]), new RegExp(`^ \\\\_ ${stranger}0\\s+\\\\_ \\S+\\s+inactive`, "m"));
  });

  it("removes both builders and leaves the engine running (it is not the client's to stop)", () => {
    kiln(["rm", stranger]);
    kiln(["rm", builder]);
    assert.doesNotMatch(kiln(["ls"]), new RegExp(`${builder}|${stranger}`));
    assert.equal(kilnd?.exitCode, null);
  });
});
