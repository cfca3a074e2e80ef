// The docker-container driver against the real dockerd: the engine image assembled from this
// checkout, the engine container and its state volume, the probe through docker exec, and gRPC
// connections to kilnd through `docker exec … kilnd dial-stdio` and through its published socket.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBuilder } from "../../cli-plugin/commands/create.js";
import { inspectBuilder } from "../../cli-plugin/commands/inspect.js";
import { formatTable, listBuilders } from "../../cli-plugin/commands/ls.js";
import { removeBuilders } from "../../cli-plugin/commands/rm.js";
import { stopBuilder } from "../../cli-plugin/commands/stop.js";
import { BuilderStore } from "../../cli-plugin/store/builder-store.js";
import { loadBuilder } from "../../cli-plugin/store/resolve-builder.js";
import { containerName, dockerContainerFactory, volumeName } from "../../drivers/docker-container/driver.js";
import { dialEngine } from "../../src/client/dial-engine.js";
import { hostPlatform, samePlatform } from "../../src/oci/platform.js";

function docker(...args: string[]): string {
  return execFileSync("docker", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

function exists(kind: "container" | "volume", name: string): boolean {
  try {
    docker(kind, "inspect", name);
    return true;
  } catch {
    return false;
  }
}

describe("docker-container driver (real dockerd)", function () {
  this.timeout(240_000);
  const name = `kilntest${randomBytes(3).toString("hex")}`;
  const node = `${name}0`;
  let configDir: string;
  let env: NodeJS.ProcessEnv;

  before(() => {
    configDir = mkdtempSync(join(tmpdir(), "kiln-docker-config-"));
    env = { ...process.env, DOCKER_CONFIG: configDir, KILN_BUILDER: "", BUILDX_BUILDER: "" };
    // The engine image is assembled from dist/: bundle the current sources first.
    execFileSync(process.execPath, ["scripts/build.mjs"], { stdio: "inherit" });
  });

  after(() => {
    for (const [kind, n] of [
      ["container", containerName(node)],
      ["volume", volumeName(node)],
    ] as const) {
      if (exists(kind, n)) docker(kind, "rm", "-f", n);
    }
    rmSync(configDir, { recursive: true, force: true });
  });

  it("boots the engine in a container with its state volume", async () => {
    const created = await createBuilder(
      {
        name,
        driverOpts: ["memory=1g"],
        platforms: [],
        append: false,
        leave: false,
        use: true,
        bootstrap: true,
      },
      env,
    );
    assert.equal(created, name);
    const state = JSON.parse(docker("container", "inspect", containerName(node)))[0];
    assert.equal(state.State.Running, true);
    assert.equal(state.HostConfig.RestartPolicy.Name, "unless-stopped");
    assert.equal(state.HostConfig.Init, true);
    assert.equal(state.HostConfig.Memory, 1024 ** 3);
    assert.ok(
      state.Mounts.some(
        (m: { Name?: string; Destination: string }) =>
          m.Name === volumeName(node) && m.Destination === "/var/lib/kiln",
      ),
    );
    assert.match(state.Config.Image, /^kiln\/engine:[0-9a-f]{16}$/);
  });

  it("answers kilnd version inside the container", () => {
    assert.match(docker("exec", containerName(node), "kilnd", "version"), /^kilnd \S+ v\d+\.\d+\.\d+/);
  });

  it("reaches the engine's API through docker exec dial-stdio", async () => {
    const builder = await loadBuilder(BuilderStore.forEnv(env), name, env);
    const driver = builder.nodes[0]!.driver;
    const engine = await dialEngine({ duplex: () => driver.dial() });
    try {
      const info = await engine.info();
      assert.ok(info.nativePlatforms.some((p) => samePlatform(p, hostPlatform())));
    } finally {
      await engine.close();
    }
  });

  it("publishes the engine's socket on this host, where a root client needs no Docker API to use it", async () => {
    const socket = join("/run/kiln/engines", containerName(node), "kilnd.sock");
    assert.ok(statSync(socket).isSocket(), `${socket} is the engine's socket`);
    // The same node, told its Docker daemon is at a socket nothing listens on: every Docker API
    // call would fail, so status and engine can only come from the published socket.
    const driver = dockerContainerFactory.create({
      name: node,
      endpoint: "unix:///nonexistent/docker.sock",
      driverOpts: {},
      platforms: [],
      flags: [],
      env,
    });
    assert.equal((await driver.info()).status, "running");
    const engine = await driver.engine();
    try {
      assert.match((await engine.info()).version, /\d+\.\d+\.\d+/);
    } finally {
      await engine.close();
    }
  });

  it("lists the builder as current and running with its version", async () => {
    const table = formatTable(await listBuilders(env));
    assert.match(table, new RegExp(`^${name}\\*\\s+docker-container$`, "m"));
    assert.match(
      table,
      new RegExp(`^ \\\\_ ${node}\\s+\\\\_ default\\s+running\\s+v\\d+\\.\\d+\\.\\d+\\s+linux/amd64`, "m"),
    );
  });

  it("shows the node's driver options and status in inspect", async () => {
    const text = await inspectBuilder(name, { bootstrap: false }, env);
    assert.match(text, /^Driver Options:\s+memory="1g"$/m);
    assert.match(text, /^Status:\s+running$/m);
  });

  it("stops the engine container on stop", async () => {
    await stopBuilder(name, undefined, env);
    assert.equal(JSON.parse(docker("container", "inspect", containerName(node)))[0].State.Running, false);
  });

  it("removes the container but keeps the volume with --keep-state", async () => {
    await removeBuilders(
      { names: [name], keepState: true, keepDaemon: false, allInactive: false, force: false },
      env,
    );
    assert.equal(exists("container", containerName(node)), false);
    assert.equal(exists("volume", volumeName(node)), true);
    assert.equal(await BuilderStore.forEnv(env).get(name), undefined);
  });

  it("removes the volume too without --keep-state", async () => {
    await createBuilder(
      { name, driverOpts: [], platforms: [], append: false, leave: false, use: false, bootstrap: true },
      env,
    );
    assert.equal(exists("container", containerName(node)), true);
    await removeBuilders(
      { names: [name], keepState: false, keepDaemon: false, allInactive: false, force: false },
      env,
    );
    assert.equal(exists("container", containerName(node)), false);
    assert.equal(exists("volume", volumeName(node)), false);
    assert.equal(existsSync(join("/run/kiln/engines", containerName(node))), false, "its socket dir is gone");
  });
});
