import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BuilderStore } from "../../../cli-plugin/store/builder-store.js";
import type { NodeGroup } from "../../../cli-plugin/store/node-group.js";
import { dockerEndpointKey } from "../../../cli-plugin/store/resolve-builder.js";

const CLI = fileURLToPath(new URL("./builder-cli.ts", import.meta.url));

function group(name: string, endpoint = "unix:///run/a.sock"): NodeGroup {
  return {
    name,
    driver: "remote",
    dynamic: false,
    nodes: [{ name: `${name}0`, endpoint, platforms: [], driverOpts: {}, flags: [] }],
  };
}

function run(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b) => (stdout += b));
    child.stderr.on("data", (b) => (stderr += b));
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe("builder store", () => {
  let dir: string;
  let store: BuilderStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "kiln-store-"));
    store = new BuilderStore(join(dir, "kiln"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("reads back a saved builder and lists it", async () => {
    await store.transaction((tx) => tx.save(group("alpha")));
    assert.deepEqual(await store.get("alpha"), group("alpha"));
    assert.deepEqual(
      (await store.list()).map((g) => g.name),
      ["alpha"],
    );
  });

  it("finds builders by name case-insensitively", async () => {
    await store.transaction((tx) => tx.save(group("alpha")));
    assert.equal((await store.get("ALPHA"))?.name, "alpha");
  });

  it("leaves no temporary files after writing", async () => {
    await store.transaction(async (tx) => {
      await tx.save(group("alpha"));
      await tx.setCurrent("unix:///var/run/docker.sock", "alpha", false, true);
      await tx.touchActivity("alpha");
    });
    const all = readdirSync(join(dir, "kiln"), { recursive: true }).map(String);
    assert.deepEqual(
      all.filter((f) => f.includes(".tmp-")),
      [],
    );
  });

  it("selects a builder only for the Docker endpoint it was selected on", async () => {
    await store.transaction((tx) => tx.setCurrent("unix:///a.sock", "alpha", false, false));
    assert.equal(await store.current("unix:///a.sock"), "alpha");
    assert.equal(await store.current("tcp://other:2376"), undefined);
  });

  it("selects a builder for every endpoint with global", async () => {
    await store.transaction((tx) => tx.setCurrent("unix:///a.sock", "alpha", true, false));
    assert.equal(await store.current("tcp://other:2376"), "alpha");
  });

  it("falls back to an endpoint's default after another endpoint's selection", async () => {
    await store.transaction(async (tx) => {
      await tx.setCurrent("unix:///a.sock", "alpha", false, true);
      await tx.setCurrent("tcp://b:2376", "beta", false, false);
    });
    assert.equal(await store.current("unix:///a.sock"), "alpha");
    assert.equal(await store.current("tcp://b:2376"), "beta");
  });

  it("forgets the selection and default of a removed builder", async () => {
    await store.transaction(async (tx) => {
      await tx.save(group("alpha"));
      await tx.setCurrent("unix:///a.sock", "alpha", false, true);
      await tx.remove("alpha");
    });
    assert.equal(await store.get("alpha"), undefined);
    assert.equal(await store.current("unix:///a.sock"), undefined);
  });

  it("records the last activity of a builder", async () => {
    const when = new Date("2024-05-01T10:00:00.000Z");
    await store.transaction((tx) => tx.touchActivity("alpha", when));
    assert.deepEqual(await store.lastActivity("alpha"), when);
  });

  it("refuses a stored file that is not a builder", async () => {
    const { writeFileSync, mkdirSync } = await import("node:fs");
    mkdirSync(join(dir, "kiln", "instances"), { recursive: true });
    writeFileSync(join(dir, "kiln", "instances", "broken"), "{not json");
    await assert.rejects(store.get("broken"), /invalid builder file .*broken/);
  });

  it("serialises transactions in one process", async () => {
    const order: string[] = [];
    await Promise.all(
      [1, 2, 3].map((i) =>
        store.transaction(async () => {
          order.push(`start${i}`);
          await new Promise((r) => setTimeout(r, 30));
          order.push(`end${i}`);
        }),
      ),
    );
    for (let k = 0; k < order.length; k += 2)
      assert.equal(order[k]!.replace("start", ""), order[k + 1]!.replace("end", ""));
  });

  it("keeps every node when 8 CLIs append to one builder at once", async function () {
    this.timeout(120_000);
    const env = { ...process.env, DOCKER_CONFIG: dir, KILN_BUILDER: "", BUILDX_BUILDER: "" };
    const first = await run(
      ["create", "--name", "shared", "--driver", "remote", "unix:///run/kiln/n0.sock"],
      env,
    );
    assert.equal(first.code, 0, first.stderr);
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        run(
          i % 2 === 0
            ? [
                "create",
                "--append",
                "--name",
                "shared",
                "--driver",
                "remote",
                `unix:///run/kiln/n${i + 1}.sock`,
              ]
            : ["create", "--use", "--name", `solo${i}`, "--driver", "remote", `unix:///run/kiln/s${i}.sock`],
          env,
        ),
      ),
    );
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const s = new BuilderStore(join(dir, "kiln"));
    const shared = await s.get("shared");
    assert.equal(shared?.nodes.length, 5);
    assert.deepEqual(
      shared!.nodes.map((n) => n.endpoint).sort(),
      ["n0", "n1", "n3", "n5", "n7"].map((n) => `unix:///run/kiln/${n}.sock`),
    );
    assert.equal(new Set(shared!.nodes.map((n) => n.name)).size, 5);
    assert.deepEqual(
      (await s.list()).map((g) => g.name),
      ["shared", "solo1", "solo3", "solo5", "solo7"],
    );
    const key = dockerEndpointKey(env);
    assert.match((await s.current(key)) ?? "", /^solo[1357]$/);
  });
});
