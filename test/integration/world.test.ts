import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { loadWorld } from "../support/world.js";

const world = loadWorld();
const run = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

function httpsStatus(url: string, auth?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        ca: readFileSync(world.caFile),
        headers: auth ? { authorization: `Basic ${Buffer.from(auth).toString("base64")}` } : {},
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("test world", () => {
  it("has a running dockerd", () => {
    assert.match(run("/usr/bin/docker", ["info", "--format", "{{.ServerVersion}}"]), /^20\.10/);
  });

  it("serves the plain registry's /v2/ over HTTP on loopback", async () => {
    const res = await fetch(`http://${world.registry}/v2/`);
    assert.equal(res.status, 200);
  });

  it("makes the TLS registry refuse anonymous requests", async () => {
    assert.equal(await httpsStatus(`https://${world.registryTls}/v2/`), 401);
  });

  it("makes the TLS registry accept its credentials over a certificate signed by the test CA", async () => {
    assert.equal(
      await httpsStatus(
        `https://${world.registryTls}/v2/`,
        `${world.registryUser}:${world.registryPassword}`,
      ),
      200,
    );
  });

  it("holds a busybox index with linux/amd64 and linux/arm64 images, as skopeo sees it", () => {
    const raw = JSON.parse(
      run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${world.busybox}`]),
    );
    const platforms = raw.manifests.map(
      (m: { platform: { os: string; architecture: string } }) =>
        `${m.platform.os}/${m.platform.architecture}`,
    );
    assert.deepEqual(platforms.sort(), ["linux/amd64", "linux/arm64"]);
  });

  it("runs the arm64 busybox under QEMU emulation", () => {
    assert.equal(
      run("/usr/bin/docker", [
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        world.busybox,
        "uname",
        "-m",
      ]).trim(),
      "aarch64",
    );
  });

  it("runs the amd64 busybox natively", () => {
    assert.equal(
      run("/usr/bin/docker", [
        "run",
        "--rm",
        "--platform",
        "linux/amd64",
        world.busybox,
        "uname",
        "-m",
      ]).trim(),
      "x86_64",
    );
  });

  it("gives the busybox image a non-root user and group for USER and --chown tests", () => {
    assert.match(
      run("/usr/bin/docker", ["run", "--rm", "busybox:latest", "id", "user"]),
      /uid=1000\(user\) gid=1000\(user\)/,
    );
  });
});
