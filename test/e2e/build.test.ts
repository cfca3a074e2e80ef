import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadWorld, REPO_ROOT } from "../support/world.js";

const KILN = join(REPO_ROOT, "bin", "kiln");
const DOCKER_CLI = "/usr/local/bin/docker";
const world = loadWorld();

describe("kiln build (the CLI as a user runs it)", function () {
  this.timeout(120_000);
  let dir: string;
  let env: NodeJS.ProcessEnv;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "kiln-e2e-"));
    env = { ...process.env, KILN_STATE: join(dir, "state"), DOCKER_CONFIG: join(dir, "docker-config") };
    execFileSync(KILN, ["install-plugin"], { env });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const context = (name: string, dockerfile: string): string => {
    const ctx = join(dir, name);
    execFileSync("mkdir", ["-p", ctx]);
    writeFileSync(join(ctx, "Dockerfile"), dockerfile);
    return ctx;
  };

  it("builds a multi-stage Dockerfile through `docker kiln build --load`, and dockerd runs the image", () => {
    const tag = `kiln-e2e:${Date.now()}`;
    const ctx = context(
      "multi",
      `FROM ${world.busybox} AS build\nRUN echo compiled > /artifact\nFROM ${world.busybox}\nCOPY --from=build /artifact /artifact\nCMD ["cat", "/artifact"]\n`,
    );
    execFileSync(DOCKER_CLI, ["kiln", "build", "--progress=plain", "--load", "-t", tag, ctx], {
      env,
      stdio: "pipe",
    });
    try {
      assert.equal(execFileSync("/usr/bin/docker", ["run", "--rm", tag], { encoding: "utf8" }), "compiled\n");
    } finally {
      spawnSync("/usr/bin/docker", ["rmi", "-f", tag]);
    }
  });

  it("prints the image id with -q", () => {
    const ctx = context("quiet", `FROM ${world.busybox}\nRUN echo q > /q\n`);
    const out = execFileSync(KILN, ["build", "-q", "-o", `type=oci,dest=${join(dir, "q.tar")}`, ctx], {
      env,
      encoding: "utf8",
    });
    assert.match(out.trim(), /^sha256:[a-f0-9]{64}$/);
  });

  it("exits 1 on a failing step, showing the step, its output and the Dockerfile lines", () => {
    const ctx = context("fail", `FROM ${world.busybox}\nRUN echo fine\nRUN echo "about to fail" && exit 3\n`);
    const r = spawnSync(KILN, ["build", "--progress=plain", ctx], { env, encoding: "utf8" });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^ > \[3\/3\] RUN echo "about to fail" && exit 3:$/m);
    assert.match(r.stderr, /about to fail/);
    assert.match(r.stderr, /Dockerfile:3\n/);
    assert.match(r.stderr, />>> RUN echo "about to fail" && exit 3/);
    assert.match(
      r.stderr,
      /^ERROR: failed to solve: process .* did not complete successfully: exit code: 3$/m,
    );
  });

  it("exits 2 on a bad flag value", () => {
    const r = spawnSync(KILN, ["build", "--network=bridge", "."], { env, encoding: "utf8" });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--network/);
  });

  it("lists a Dockerfile's targets with --call=targets", () => {
    const ctx = context(
      "targets",
      `FROM ${world.busybox} AS base\n# release builds the final image\nFROM base AS release\n`,
    );
    const out = execFileSync(KILN, ["build", "--call=targets", ctx], { env, encoding: "utf8" });
    assert.match(out, /^TARGET\s+DESCRIPTION$/m);
    assert.match(out, /^base\s*$/m);
    assert.match(out, /^release \(default\)\s+builds the final image$/m);
  });

  it("reports build check findings with --check and exits 1", () => {
    const ctx = context("check", `FROM ${world.busybox} as Base\nCMD echo hi\n`);
    const r = spawnSync(KILN, ["build", "--check", ctx], { env, encoding: "utf8" });
    assert.equal(r.status, 1);
    assert.match(r.stdout, /WARNING: FromAsCasing/);
    assert.match(r.stdout, /WARNING: JSONArgsRecommended/);
  });

  it("draws a live step list with timers in a terminal (tty progress under tmux)", () => {
    const ctx = context("tty", `FROM ${world.busybox}\nRUN echo one && sleep 1\nRUN echo two\n`);
    const session = `kiln-e2e-${process.pid}`;
    const done = join(dir, "tty-done");
    spawnSync("tmux", ["kill-session", "-t", session]);
    execFileSync("tmux", ["new-session", "-d", "-s", session, "-x", "120", "-y", "30"], { env });
    try {
      const cmd = `KILN_STATE=${env.KILN_STATE} ${KILN} build ${ctx}; echo exit=$? > ${done}`;
      execFileSync("tmux", ["send-keys", "-t", session, cmd, "Enter"]);
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && spawnSync("test", ["-e", done]).status !== 0)
        spawnSync("sleep", ["0.2"]);
      const screen = execFileSync("tmux", ["capture-pane", "-p", "-t", session], { encoding: "utf8" });
      assert.match(screen, /\[\+\] FINISHED \d+\.\d+s \(\d+\/\d+\)/);
      assert.match(screen, /=> \[2\/3\] RUN echo one && sleep 1\s+\d+\.\ds/);
      assert.match(screen, /=> \[3\/3\] RUN echo two\s+\d+\.\ds/);
      assert.doesNotMatch(screen, /\x1b\[/, "no raw escape codes are left on screen");
    } finally {
      spawnSync("tmux", ["kill-session", "-t", session]);
    }
  });
});
