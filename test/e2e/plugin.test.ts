import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../support/world.js";

/** The Docker CLI users run (28.x); the Debian 20.10 client in /usr/bin is only the BuildKit peer. */
const DOCKER_CLI = "/usr/local/bin/docker";
const KILN = join(REPO_ROOT, "bin", "kiln");

describe("docker kiln (the Docker CLI plugin)", () => {
  let dockerConfig: string;
  before(() => {
    if (!existsSync(join(REPO_ROOT, "dist", "kiln.js")))
      execFileSync("npm", ["run", "build"], { cwd: REPO_ROOT, stdio: "ignore" });
    dockerConfig = mkdtempSync(join(tmpdir(), "kiln-docker-config-"));
    execFileSync(KILN, ["install-plugin"], { env: { ...process.env, DOCKER_CONFIG: dockerConfig } });
  });
  after(() => rmSync(dockerConfig, { recursive: true, force: true }));

  const docker = (args: string[]) =>
    execFileSync(DOCKER_CLI, args, {
      encoding: "utf8",
      env: { ...process.env, DOCKER_CONFIG: dockerConfig },
    });

  it("prints Kiln's version and commit through `docker kiln version`", () => {
    assert.match(
      docker(["kiln", "version"]).trim(),
      /^github\.com\/kiln-build\/kiln v\d+\.\d+\.\d+\S* ([0-9a-f]{7,}(-dirty)?|unknown)$/,
    );
  });

  it("is listed among the plugin commands of `docker --help`", () => {
    assert.match(docker(["--help"]), /^\s+kiln\*?\s+Kiln: build container images/m);
  });

  it("answers docker-cli-plugin-metadata with schema 0.1.0 metadata", () => {
    const meta = JSON.parse(
      execFileSync(join(dockerConfig, "cli-plugins", "docker-kiln"), ["docker-cli-plugin-metadata"], {
        encoding: "utf8",
      }),
    );
    assert.equal(meta.SchemaVersion, "0.1.0");
    assert.equal(meta.Vendor, "Kiln");
    assert.match(meta.Version, /^v\d+\.\d+\.\d+/);
    assert.ok(meta.ShortDescription.length > 0);
  });

  it("runs standalone as `kiln` with the same commands", () => {
    assert.match(execFileSync(KILN, ["version"], { encoding: "utf8" }), /^github\.com\/kiln-build\/kiln v/);
  });

  it("exits 2 on an unknown command", () => {
    try {
      execFileSync(KILN, ["no-such-command"], { stdio: "pipe" });
      assert.fail("expected a non-zero exit");
    } catch (err) {
      assert.equal((err as { status: number }).status, 2);
    }
  });
});
