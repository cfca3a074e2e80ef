// Kiln as a Docker CLI plugin, through the real Docker CLI and the built bundle (dist/kiln.js).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../support/world.js";

/** The Docker CLI users run (28.x, no buildx); /usr/bin/docker is Debian's 20.10 client for dockerd. */
const DOCKER_CLI = "/usr/local/bin/docker";
const KILN = join(REPO_ROOT, "bin", "kiln");
const VERSION: string = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")).version;
const VERSION_LINE = new RegExp(
  `^github\\.com/kiln-build/kiln v${VERSION.replace(/\./g, "\\.")} ([0-9a-f]{7,}(-dirty)?|unknown)$`,
);

describe("docker kiln (the Docker CLI plugin)", () => {
  let dockerConfig: string;
  let env: NodeJS.ProcessEnv;
  const docker = (args: string[]) => execFileSync(DOCKER_CLI, args, { encoding: "utf8", env });

  before(function () {
    this.timeout(300_000);
    if (!existsSync(join(REPO_ROOT, "dist", "kiln.js"))) {
      try {
        execFileSync("npm", ["run", "build"], { cwd: REPO_ROOT, stdio: "pipe", encoding: "utf8" });
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string };
        throw new Error(`npm run build failed:\n${e.stdout ?? ""}${e.stderr ?? ""}`);
      }
    }
    assert.match(
      execFileSync(DOCKER_CLI, ["version", "--format", "{{.Client.Version}}"], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      }).trim(),
      /^28\./,
      `${DOCKER_CLI} should be the 28.x Docker CLI`,
    );
    dockerConfig = mkdtempSync(join(tmpdir(), "kiln-docker-config-"));
    env = { ...process.env, DOCKER_CONFIG: dockerConfig };
    delete env.DOCKER_CLI_PLUGIN_EXTRA_DIRS;
    const out = execFileSync(KILN, ["install-plugin"], { encoding: "utf8", env });
    assert.match(out, new RegExp(`installed ${join(dockerConfig, "cli-plugins", "docker-kiln")}`));
  });
  after(() => {
    if (dockerConfig) rmSync(dockerConfig, { recursive: true, force: true });
  });

  it("installs docker-kiln into $DOCKER_CONFIG/cli-plugins, pointing at bin/kiln", () => {
    const plugin = join(dockerConfig, "cli-plugins", "docker-kiln");
    assert.ok(lstatSync(plugin).isSymbolicLink() || lstatSync(plugin).isFile());
    assert.equal(realpathSync(plugin), realpathSync(KILN));
  });

  it("prints Kiln's version line through `docker kiln version`", () => {
    const line = docker(["kiln", "version"]).trim();
    assert.match(line, VERSION_LINE);
    assert.equal(line, execFileSync(KILN, ["version"], { encoding: "utf8" }).trim());
  });

  it("is listed among the plugin commands of `docker --help`", () => {
    assert.match(docker(["--help"]), /^\s+kiln\*?\s+Kiln: build container images/m);
  });

  it("answers docker-cli-plugin-metadata with schema 0.1.0 metadata", () => {
    const out = execFileSync(
      join(dockerConfig, "cli-plugins", "docker-kiln"),
      ["docker-cli-plugin-metadata"],
      {
        encoding: "utf8",
      },
    );
    const meta = JSON.parse(out);
    assert.equal(meta.SchemaVersion, "0.1.0");
    assert.equal(meta.Vendor, "Kiln");
    assert.equal(meta.Version, `v${VERSION}`);
    assert.ok(typeof meta.ShortDescription === "string" && meta.ShortDescription.length > 0);
  });

  it("runs standalone as `kiln` with the same commands", () => {
    assert.match(execFileSync(KILN, ["version"], { encoding: "utf8" }).trim(), VERSION_LINE);
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
