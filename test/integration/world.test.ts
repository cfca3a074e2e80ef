// The test world itself (test/world/up): every service answers as the other tests expect.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadWorld } from "../support/world.js";

const world = loadWorld();
/** Debian's Docker client, the same 20.10 as the dockerd it talks to. */
const DOCKER = "/usr/bin/docker";
const INDEX = "application/vnd.oci.image.index.v1+json";

const run = (cmd: string, args: string[], env?: NodeJS.ProcessEnv) =>
  execFileSync(cmd, args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    env: env ?? process.env,
    maxBuffer: 16 << 20,
  });
const docker = (args: string[], env?: NodeJS.ProcessEnv) =>
  run(DOCKER, ["-H", world.dockerHost, ...args], env);
const port = (hostPort: string) => Number(hostPort.slice(hostPort.lastIndexOf(":") + 1));

interface Reply {
  status: number;
  body: string;
}
function https(url: string, opts: { auth?: string; ca?: boolean; method?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: opts.method ?? "GET",
        ...(opts.ca === false ? {} : { ca: readFileSync(world.caFile) }),
        headers: {
          accept: INDEX,
          ...(opts.auth ? { authorization: `Basic ${Buffer.from(opts.auth).toString("base64")}` } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}
const credentials = `${world.registryUser}:${world.registryPassword}`;
const platformsOf = (index: { manifests: { platform: { os: string; architecture: string } }[] }) =>
  index.manifests.map((m) => `${m.platform.os}/${m.platform.architecture}`).sort();

describe("test world", () => {
  it("has dockerd answering `docker info` on the world's socket", () => {
    assert.equal(world.dockerHost, "unix:///var/run/docker.sock");
    assert.match(docker(["info", "--format", "{{.ServerVersion}}"]).trim(), /^\d+\.\d+\.\d+/);
  });

  it("keeps both registries on 127.0.0.1 only", () => {
    assert.match(world.registry, /^127\.0\.0\.1:\d+$/);
    assert.match(world.registryTls, /^127\.0\.0\.1:\d+$/);
    for (const hostPort of [world.registry, world.registryTls]) {
      const listening = run("ss", ["-Hltn", `sport = :${port(hostPort)}`])
        .trim()
        .split("\n")
        .map((l) => l.trim().split(/\s+/)[3]);
      assert.deepEqual(listening, [hostPort], `listeners on port ${port(hostPort)}`);
    }
  });

  it("serves the plain registry's /v2/ over HTTP with 200", async () => {
    const res = await fetch(`http://${world.registry}/v2/`);
    assert.equal(res.status, 200);
  });

  it("makes the TLS registry refuse anonymous requests with 401 and a basic challenge", async () => {
    const res = await new Promise<{ status: number; challenge: string }>((resolve, reject) => {
      const req = request(`https://${world.registryTls}/v2/`, { ca: readFileSync(world.caFile) }, (r) => {
        r.resume();
        resolve({ status: r.statusCode ?? 0, challenge: String(r.headers["www-authenticate"]) });
      });
      req.on("error", reject);
      req.end();
    });
    assert.equal(res.status, 401);
    assert.match(res.challenge, /^Basic realm=/);
  });

  it("makes the TLS registry accept its credentials over a certificate signed by the test CA", async () => {
    assert.equal((await https(`https://${world.registryTls}/v2/`, { auth: credentials })).status, 200);
    assert.equal(
      (await https(`https://${world.registryTls}/v2/`, { auth: `${world.registryUser}:wrong` })).status,
      401,
    );
  });

  it("serves a certificate that fails verification without the test CA", async () => {
    await assert.rejects(
      https(`https://${world.registryTls}/v2/`, { ca: false }),
      (err: NodeJS.ErrnoException) => {
        assert.match(String(err.code), /CERT|SIGNED|ISSUER|VERIFY/);
        return true;
      },
    );
  });

  it("lets tests delete from both registries", async () => {
    // With deletes disabled the registry answers 405 UNSUPPORTED; enabled, an unknown digest is 404.
    const zero = `sha256:${"0".repeat(64)}`;
    const plain = await fetch(`http://${world.registry}/v2/busybox/manifests/${zero}`, { method: "DELETE" });
    assert.equal(plain.status, 404);
    const tls = await https(`https://${world.registryTls}/v2/busybox/manifests/${zero}`, {
      method: "DELETE",
      auth: credentials,
    });
    assert.equal(tls.status, 404);
  });

  it("holds a busybox index with linux/amd64 and linux/arm64 images, as skopeo sees it", () => {
    const raw = run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${world.busybox}`]);
    const index = JSON.parse(raw);
    assert.equal(index.mediaType, INDEX);
    assert.deepEqual(platformsOf(index), ["linux/amd64", "linux/arm64"]);
    assert.equal(`sha256:${createHash("sha256").update(raw).digest("hex")}`, world.busyboxDigest);
  });

  it("holds the same index in the TLS registry, trusted through /etc/docker/certs.d", () => {
    const raw = run("skopeo", [
      "inspect",
      "--raw",
      "--creds",
      credentials,
      "--cert-dir",
      `/etc/docker/certs.d/${world.registryTls}`,
      `docker://${world.busyboxTls}`,
    ]);
    assert.equal(`sha256:${createHash("sha256").update(raw).digest("hex")}`, world.busyboxDigest);
    assert.equal(
      readFileSync(`/etc/docker/certs.d/${world.registryTls}/ca.crt`, "utf8"),
      readFileSync(world.caFile, "utf8"),
    );
  });

  it("keeps the same index as an OCI layout", () => {
    const raw = run("skopeo", ["inspect", "--raw", `oci:${world.busyboxOci}:latest`]);
    assert.equal(`sha256:${createHash("sha256").update(raw).digest("hex")}`, world.busyboxDigest);
    assert.deepEqual(platformsOf(JSON.parse(raw)), ["linux/amd64", "linux/arm64"]);
  });

  it("runs the arm64 busybox from the plain registry under QEMU emulation", () => {
    assert.equal(
      docker(["run", "--rm", "--platform", "linux/arm64", world.busybox, "uname", "-m"]).trim(),
      "aarch64",
    );
  });

  it("runs the amd64 busybox from the plain registry natively", () => {
    assert.equal(
      docker(["run", "--rm", "--platform", "linux/amd64", world.busybox, "uname", "-m"]).trim(),
      "x86_64",
    );
  });

  it("has dockerd pull from the TLS registry with the credentials, trusting the CA via certs.d", () => {
    const config = mkdtempSync(join(tmpdir(), "kiln-world-docker-"));
    const ref = world.busyboxTls;
    try {
      writeFileSync(
        join(config, "config.json"),
        JSON.stringify({
          auths: { [world.registryTls]: { auth: Buffer.from(credentials).toString("base64") } },
        }),
      );
      const env = { ...process.env, DOCKER_CONFIG: config };
      docker(["pull", "-q", "--platform", "linux/amd64", ref], env);
      assert.equal(
        docker(["image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", ref]).trim(),
        "linux/amd64",
      );
    } finally {
      try {
        docker(["image", "rm", ref]);
      } catch {
        // not pulled
      }
      rmSync(config, { recursive: true, force: true });
    }
  });

  it("loads the amd64 busybox into dockerd as busybox:latest", () => {
    assert.equal(
      docker(["image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", "busybox:latest"]).trim(),
      "linux/amd64",
    );
    assert.equal(docker(["run", "--rm", "busybox:latest", "sh", "-c", "echo hi"]).trim(), "hi");
  });

  it("gives the busybox image a non-root user and group for USER and --chown tests", () => {
    const passwd = docker(["run", "--rm", "busybox:latest", "cat", "/etc/passwd"]);
    assert.match(passwd, /^root:x:0:0:/m);
    assert.match(passwd, /^user:x:1000:1000:[^:]*:\/home\/user:\/bin\/sh$/m);
    assert.match(docker(["run", "--rm", "busybox:latest", "cat", "/etc/group"]), /^user:x:1000:/m);
    const probe = 'id -un; id -u; id -g; stat -c "%a" /tmp; stat -c "%u:%g" "$HOME"; stat -c "%a" /root';
    assert.deepEqual(
      docker(["run", "--rm", "--user", "user", "busybox:latest", "sh", "-c", probe]).trim().split("\n"),
      ["user", "1000", "1000", "1777", "1000:1000", "700"],
    );
  });
});
