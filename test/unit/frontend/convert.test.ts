// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Dockerfile text uses ${VAR} on purpose
import assert from "node:assert/strict";
import { convertDockerfile, listTargets, outline } from "../../../src/frontend/dockerfile/convert/index.js";
import type { ConvertOptions, ConvertResult } from "../../../src/frontend/dockerfile/convert/types.js";
import { DockerfileError } from "../../../src/frontend/dockerfile/parser/errors.js";
import type { CopyAction, MergeOp, SourceOp } from "../../../src/llb/ops.js";
import { SCRATCH, SKIP_OUTPUT } from "../../../src/llb/ops.js";
import {
  AMD64,
  ARM64,
  copies,
  execs,
  fileOps,
  inputVertex,
  pinOf,
  resolver,
  rootVertex,
  sources,
  vertices,
} from "../llb/fixtures.js";

const df = (...lines: string[]) => `${lines.join("\n")}\n`;
const conv = (text: string, opts: ConvertOptions = {}): Promise<ConvertResult> =>
  convertDockerfile(text, { targetPlatform: AMD64, resolveImage: resolver(), ...opts });
const BUSYBOX = `docker.io/library/busybox:latest@${pinOf("docker.io/library/busybox:latest", AMD64)}`;

async function rejects(p: Promise<unknown>, re: RegExp, line?: number): Promise<DockerfileError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof DockerfileError, `expected a DockerfileError, got ${String(e)}`);
    assert.match(e.message, re);
    if (line !== undefined) assert.equal(e.line, line, `line of ${e.message}`);
    return e;
  }
  assert.fail(`expected an error matching ${re}`);
}

const history = (r: ConvertResult) => (r.imageConfig.history ?? []).map((h) => h.created_by);
const newHistory = (r: ConvertResult) =>
  (r.imageConfig.history ?? []).filter((h) => h.comment === "buildkit.dockerfile.v0");

describe("Dockerfile → LLB: stages and targets", () => {
  const multi = df(
    "FROM busybox AS base",
    "RUN echo base",
    "FROM base AS build",
    "RUN echo build",
    "FROM alpine:3.20 AS unused",
    "RUN echo unused",
    "FROM scratch",
    "COPY --from=build /out /out",
    "COPY --from=0 /etc/passwd /passwd",
  );

  it("dispatches only the stages the target needs", async () => {
    const r = await conv(multi);
    const args = execs(r.definition).map((e) => e.op.meta.args.join(" "));
    assert.deepEqual(args, ["/bin/sh -c echo base", "/bin/sh -c echo build"]);
    assert.ok(!sources(r.definition).some((s) => s.op.identifier.includes("alpine")));
    assert.deepEqual(
      r.stages.map((s) => [s.name, s.reachable]),
      [
        ["base", true],
        ["build", true],
        ["unused", false],
        ["stage-3", true],
      ],
    );
    assert.equal(r.target, "stage-3");
  });

  it("builds --target and nothing after it", async () => {
    const r = await conv(multi, { target: "unused" });
    const args = execs(r.definition).map((e) => e.op.meta.args.join(" "));
    assert.deepEqual(args, ["/bin/sh -c echo unused"]);
    assert.deepEqual(r.imageConfig.config.Cmd, ["/bin/sh"]);
  });

  it("finds targets case-insensitively and suggests close names", async () => {
    const r = await conv(multi, { target: "BUILD" });
    assert.equal(r.target, "build");
    const e = await rejects(conv(multi, { target: "buidl" }), /target stage "buidl" could not be found/);
    assert.equal(e.suggestion, "did you mean build?");
  });

  it("copies from a stage by index and by name", async () => {
    const r = await conv(multi);
    const cs = copies(r.definition);
    assert.deepEqual(
      cs.map((c) => [c.src, c.dest]),
      [
        ["/out", "/out"],
        ["/etc/passwd", "/passwd"],
      ],
    );
    const [copy] = fileOps(r.definition).slice(-1);
    // the second copy reads stage 0 (the busybox run), not the build stage
    const second = copy!.op.steps[0]!;
    const src = inputVertex(r.definition, copy!.vertex, second.secondaryInput!);
    assert.deepEqual((src.vertex.op as unknown as { meta: { args: string[] } }).meta.args, [
      "/bin/sh",
      "-c",
      "echo base",
    ]);
  });

  it("inherits the base stage's state and config", async () => {
    const r = await conv(df("FROM busybox AS a", "ENV A=1", "WORKDIR /w", "FROM a", "RUN pwd"));
    const [e] = execs(r.definition);
    assert.equal(e!.op.meta.cwd, "/w");
    assert.ok(e!.op.meta.env.includes("A=1"));
    assert.ok(r.imageConfig.config.Env!.includes("A=1"));
    assert.equal(r.imageConfig.config.WorkingDir, "/w");
  });

  it("names progress like BuildKit", async () => {
    const r = await conv(df("FROM busybox AS build", "RUN echo a", "FROM build", "COPY x /x", "RUN echo b"));
    const names = vertices(r.definition)
      .map((v) => v.md?.description)
      .filter(Boolean);
    assert.deepEqual(names, [
      `[build 1/2] FROM ${BUSYBOX}`,
      "[build 2/2] RUN echo a",
      "[internal] load build context",
      "[stage-1 1/2] COPY x /x",
      "[stage-1 2/2] RUN echo b",
    ]);
    const single = await conv(df("FROM busybox", "RUN echo a"));
    assert.deepEqual(
      vertices(single.definition).map((v) => v.md?.description),
      [`[1/2] FROM ${BUSYBOX}`, "[2/2] RUN echo a"],
    );
  });

  it("pads step numbers to the width of the total", async () => {
    const lines = ["FROM busybox"];
    for (let i = 0; i < 10; i++) lines.push(`RUN echo ${i}`);
    const r = await conv(df(...lines));
    const names = execs(r.definition).map((e) => e.md!.description!);
    assert.equal(names[0], "[ 2/11] RUN echo 0");
    assert.equal(names[9], "[11/11] RUN echo 9");
  });

  it("prefixes the platform when building several", async () => {
    const r = await conv(df("FROM busybox", "RUN true"), { multiPlatform: true });
    assert.equal(execs(r.definition)[0]!.md!.description, "[linux/amd64 2/2] RUN true");
  });

  it("reports a circular dependency", async () => {
    await rejects(
      conv(df("FROM busybox AS a", "COPY --from=b /x /x", "FROM busybox AS b", "COPY --from=a /y /y")),
      /circular dependency detected on stage: a/,
    );
  });

  it("refuses to copy from a stage defined later", async () => {
    await rejects(
      conv(df("FROM busybox AS a", "COPY --from=b /x /x", "FROM busybox AS b", "RUN true"), { target: "a" }),
      /cannot copy from stage "b", it needs to be defined before current stage "a"/,
      2,
    );
  });

  it("treats an unknown --from as an image and reports where it failed", async () => {
    const e = await rejects(conv(df("FROM busybox", "COPY --from=nosuch /x /x")), /nosuch: .*not found/, 2);
    assert.match(e.format(), /COPY --from=nosuch/);
  });

  it("uses an image named by --from", async () => {
    const r = await conv(df("FROM scratch", "COPY --from=busybox /bin/sh /sh"));
    assert.ok(sources(r.definition).some((s) => s.op.identifier === `docker-image://${BUSYBOX}`));
  });

  it("rejects an invalid stage index and variables in --from", async () => {
    await rejects(conv(df("FROM busybox", "COPY --from=7 /x /x")), /invalid stage index 7/, 2);
    await rejects(
      conv(df("ARG S=a", "FROM busybox", "COPY --from=$S /x /x")),
      /variable expansion is not supported for --from/,
    );
  });

  it("reports an unknown base image with a suggestion", async () => {
    const e = await rejects(conv(df("FROM busybx")), /busybx: .*not found/, 1);
    assert.equal(e.suggestion, "did you mean busybox?");
  });

  it("uses scratch for base images without layers", async () => {
    const r = await conv(df("FROM empty", "RUN true"));
    const [e] = execs(r.definition);
    assert.equal(e!.op.mounts[0]!.input, SCRATCH);
    // BuildKit counts the FROM but names no vertex for it
    assert.equal(e!.md!.description, "[1/2] RUN true");
  });

  it("builds nothing for a target of FROM scratch alone", async () => {
    const r = await conv(df("FROM scratch"));
    assert.equal(r.definition.root, undefined);
    assert.equal(r.imageConfig.config.WorkingDir, "/");
  });

  it("errors on an empty Dockerfile and on one without FROM", async () => {
    await rejects(conv(""), /the Dockerfile cannot be empty/);
    await rejects(conv(df("RUN true")), /no build stage in current context/, 1);
  });

  it("lists targets and their doc comments", () => {
    const t = listTargets(
      df("# base the base image", "FROM busybox AS base", "FROM --platform=$BUILDPLATFORM base AS out"),
    );
    assert.deepEqual(
      t.map((x) => [x.name, x.description, x.default, x.base, x.platform]),
      [
        ["base", "the base image", false, "busybox", undefined],
        ["out", "", true, "base", "$BUILDPLATFORM"],
      ],
    );
  });
});

describe("Dockerfile → LLB: ARG scoping", () => {
  it("uses global ARGs in FROM, overridden by build args", async () => {
    const text = df("ARG IMG=busybox", "FROM ${IMG}", "RUN true");
    const r = await conv(text);
    assert.ok(sources(r.definition)[0]!.op.identifier.includes("busybox"));
    const r2 = await conv(text, { buildArgs: { IMG: "alpine:3.20" } });
    assert.ok(sources(r2.definition)[0]!.op.identifier.includes("alpine:3.20"));
  });

  it("hides global ARGs in a stage until redeclared", async () => {
    const r = await conv(df("ARG V=1", "FROM busybox", "RUN echo a", "ARG V", "RUN echo b"));
    const [a, b] = execs(r.definition);
    assert.ok(!a!.op.meta.env.some((e) => e.startsWith("V=")));
    assert.ok(b!.op.meta.env.includes("V=1"));
  });

  it("puts ARG values in RUN's environment and history but not in the config", async () => {
    const r = await conv(df("FROM busybox", "ARG A=1 B", "ARG C=${A}2", "RUN echo hi"), {
      buildArgs: { B: "x" },
    });
    const [e] = execs(r.definition);
    assert.ok(e!.op.meta.env.includes("A=1"));
    assert.ok(e!.op.meta.env.includes("B=x"));
    assert.ok(e!.op.meta.env.includes("C=12"));
    assert.ok(!r.imageConfig.config.Env!.some((x) => x.startsWith("A=")));
    assert.deepEqual(history(r).slice(-3), [
      "ARG A=1 B=x",
      "ARG C=12",
      "RUN |3 A=1 B=x C=12 /bin/sh -c echo hi # buildkit",
    ]);
  });

  it("flattens redeclared ARGs in RUN history as BuildKit (moby/buildkit#5505)", async () => {
    const r = await conv(df("FROM busybox", "ARG foo=bar", "ARG bar=123", "ARG foo=bar2", "RUN ls /etc/"));
    assert.deepEqual(history(r).slice(-4), [
      "ARG foo=bar",
      "ARG bar=123",
      "ARG foo=bar2",
      "RUN |2 foo=bar2 bar=123 /bin/sh -c ls /etc/ # buildkit",
    ]);
  });

  it("lets ENV override an ARG of the same name", async () => {
    const r = await conv(df("FROM busybox", "ARG X=arg", "ENV X=env", "RUN echo $X"));
    const [e] = execs(r.definition);
    assert.ok(e!.op.meta.env.includes("X=env"));
    assert.ok(!e!.op.meta.env.includes("X=arg"));
    assert.equal(history(r).at(-1), "RUN |1 X=env /bin/sh -c echo $X # buildkit");
  });

  it("changes the RUN digest when an ARG value changes", async () => {
    const text = df("FROM busybox", "ARG V=1", "RUN echo");
    const a = await conv(text);
    const b = await conv(text, { buildArgs: { V: "2" } });
    assert.notDeepEqual(a.definition.root, b.definition.root);
    const c = await conv(text, { buildArgs: { UNUSED: "2" } });
    assert.deepEqual(a.definition.root, c.definition.root);
  });

  it("defines the platform ARGs", async () => {
    const r = await conv(
      df(
        "FROM busybox",
        "ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDOS BUILDARCH TARGETSTAGE",
        "RUN true",
      ),
      {
        targetPlatform: { os: "linux", architecture: "arm", variant: "v7" },
        buildPlatform: AMD64,
        resolveImage: resolver({
          "docker.io/library/busybox:latest": {
            architecture: "arm",
            os: "linux",
            variant: "v7",
            config: {},
            rootfs: { type: "layers", diff_ids: [] },
            history: [{ created_by: "x" }],
          },
        }),
      },
    );
    const env = execs(r.definition)[0]!.op.meta.env;
    for (const want of [
      "TARGETPLATFORM=linux/arm/v7",
      "TARGETOS=linux",
      "TARGETARCH=arm",
      "TARGETVARIANT=v7",
      "BUILDPLATFORM=linux/amd64",
      "BUILDOS=linux",
      "BUILDARCH=amd64",
      "TARGETSTAGE=default",
    ])
      assert.ok(env.includes(want), want);
    assert.equal(r.imageConfig.architecture, "arm");
    assert.equal(r.imageConfig.variant, "v7");
  });

  it("builds FROM --platform=$BUILDPLATFORM stages for the build platform", async () => {
    const r = await conv(
      df(
        "FROM --platform=$BUILDPLATFORM busybox AS build",
        "ARG TARGETARCH",
        "RUN echo $TARGETARCH",
        "FROM busybox",
        "COPY --from=build /o /o",
      ),
      { targetPlatform: ARM64, buildPlatform: AMD64 },
    );
    const [e] = execs(r.definition);
    assert.deepEqual(e!.vertex.platform, AMD64);
    assert.ok(e!.op.meta.env.includes("TARGETARCH=arm64"));
    const images = sources(r.definition).filter((s) => s.op.identifier.startsWith("docker-image://"));
    assert.deepEqual(images.map((s) => s.vertex.platform?.architecture).sort(), ["amd64", "arm64"]);
    assert.equal(r.imageConfig.architecture, "arm64");
  });

  it("passes proxy build args to RUN without putting them in history", async () => {
    const text = df("FROM busybox", "RUN true");
    const r = await conv(text, { buildArgs: { HTTP_PROXY: "http://p:3128", no_proxy: "local" } });
    const [e] = execs(r.definition);
    assert.deepEqual(e!.op.meta.proxyEnv, { httpProxy: "http://p:3128", noProxy: "local" });
    assert.ok(!e!.op.meta.env.some((x) => x.startsWith("HTTP_PROXY")));
    assert.equal(history(r).at(-1), "RUN /bin/sh -c true # buildkit");
    const declared = await conv(df("FROM busybox", "ARG HTTP_PROXY", "RUN true"), {
      buildArgs: { HTTP_PROXY: "http://p:3128" },
    });
    assert.ok(execs(declared.definition)[0]!.op.meta.env.includes("HTTP_PROXY=http://p:3128"));
    assert.equal(history(declared).at(-1), "RUN |1 HTTP_PROXY=http://p:3128 /bin/sh -c true # buildkit");
  });

  it("expands global ARGs from other global ARGs", async () => {
    const r = await conv(df("ARG REPO=library", "ARG IMG=${REPO}/busybox", "FROM $IMG", "RUN true"));
    assert.ok(sources(r.definition)[0]!.op.identifier.includes("docker.io/library/busybox"));
  });

  it("rejects a FROM that expands to nothing", async () => {
    await rejects(conv(df("ARG IMG", "FROM $IMG")), /base name \(\$IMG\) should not be blank/, 2);
  });
});

describe("Dockerfile → LLB: variable expansion", () => {
  it("expands ENV LABEL WORKDIR USER VOLUME STOPSIGNAL EXPOSE COPY, not CMD or ONBUILD", async () => {
    const r = await conv(
      df(
        "FROM busybox",
        "ARG N=app",
        "ENV D=/srv/$N P=8080 S=SIGTERM",
        "LABEL name=$N",
        "WORKDIR $D",
        "USER ${N}",
        "VOLUME $D/data",
        "STOPSIGNAL $S",
        "EXPOSE $P/udp",
        "COPY $N.conf $D/",
        'CMD ["echo", "$N"]',
        "ONBUILD RUN echo $N",
      ),
    );
    const c = r.imageConfig.config;
    assert.ok(c.Env!.includes("D=/srv/app"));
    assert.equal(c.Labels!.name, "app");
    assert.equal(c.WorkingDir, "/srv/app");
    assert.equal(c.User, "app");
    assert.deepEqual(c.Volumes, { "/srv/app/data": {} });
    assert.equal(c.StopSignal, "SIGTERM");
    assert.deepEqual(c.ExposedPorts, { "8080/udp": {} });
    assert.deepEqual(c.Cmd, ["echo", "$N"]);
    assert.deepEqual(c.OnBuild, ["RUN echo $N"]);
    const [cp] = copies(r.definition);
    assert.equal(cp!.src, "/app.conf");
    assert.equal(cp!.dest, "/srv/app/");
  });

  it("expands all pairs of one ENV with the values from before it", async () => {
    const r = await conv(df("FROM busybox", "ENV A=1", "ENV A=2 B=$A"));
    assert.ok(r.imageConfig.config.Env!.includes("B=1"));
    assert.ok(r.imageConfig.config.Env!.includes("A=2"));
  });

  it("does not expand RUN's command; the shell does", async () => {
    const r = await conv(df("FROM busybox", "ENV A=1", "RUN echo $A"));
    assert.deepEqual(execs(r.definition)[0]!.op.meta.args, ["/bin/sh", "-c", "echo $A"]);
    assert.equal(execs(r.definition)[0]!.md!.description, "[2/2] RUN echo 1");
  });

  it("reports expansion errors with the line", async () => {
    await rejects(conv(df("FROM busybox", "ENV A=${B:?required}")), /B: required/, 2);
  });
});

describe("Dockerfile → LLB: RUN", () => {
  it("runs shell form with the stage's SHELL and exec form as given", async () => {
    const r = await conv(
      df("FROM busybox", "RUN echo a", 'SHELL ["/bin/bash", "-eu", "-c"]', "RUN echo b", 'RUN ["echo", "c"]'),
    );
    assert.deepEqual(
      execs(r.definition).map((e) => e.op.meta.args),
      [
        ["/bin/sh", "-c", "echo a"],
        ["/bin/bash", "-eu", "-c", "echo b"],
        ["echo", "c"],
      ],
    );
    assert.deepEqual(r.imageConfig.config.Shell, ["/bin/bash", "-eu", "-c"]);
    assert.deepEqual(history(r).slice(-3), [
      "SHELL [/bin/bash -eu -c]",
      "RUN /bin/bash -eu -c echo b # buildkit",
      "RUN echo c # buildkit",
    ]);
  });

  it("runs a heredoc's lines in the shell", async () => {
    const r = await conv(df("FROM busybox", "RUN <<EOF", "echo one", "echo two", "EOF"));
    const [e] = execs(r.definition);
    assert.deepEqual(e!.op.meta.args, ["/bin/sh", "-c", "echo one\necho two\n"]);
    assert.equal(e!.md!.description, "[2/2] RUN <<EOF (echo one...)");
  });

  it("runs a heredoc with a shebang as a script mounted from an inline file", async () => {
    const r = await conv(df("FROM busybox", "RUN <<EOT", "#!/usr/bin/env python3", "print(1)", "EOT"));
    const [e] = execs(r.definition);
    assert.deepEqual(e!.op.meta.args, ["/bin/sh", "-c", "/dev/pipes/EOT"]);
    const pipes = e!.op.mounts.find((m) => m.dest === "/dev/pipes/")!;
    assert.equal(pipes.readonly, true);
    assert.equal(pipes.selector, "/");
    const script = inputVertex(r.definition, e!.vertex, pipes.input);
    const mk = (
      script.vertex.op as unknown as {
        steps: { action: { type: string; path: string; mode: number; data: string } }[];
      }
    ).steps[0]!.action;
    assert.equal(mk.path, "/EOT");
    assert.equal(mk.mode, 0o755);
    assert.equal(Buffer.from(mk.data, "base64").toString(), "#!/usr/bin/env python3\nprint(1)\n");
  });

  it("hands a command with several heredocs to the shell whole", async () => {
    const r = await conv(df("FROM busybox", "RUN cat <<A <<B", "a", "A", "b", "B"));
    assert.deepEqual(execs(r.definition)[0]!.op.meta.args, ["/bin/sh", "-c", "cat <<A <<B\na\nA\nb\nB"]);
  });

  it("strips leading tabs of <<- heredocs", async () => {
    const r = await conv(df("FROM busybox", "RUN <<-EOF", "\techo hi", "\tEOF"));
    assert.deepEqual(execs(r.definition)[0]!.op.meta.args, ["/bin/sh", "-c", "echo hi\n"]);
  });

  it("mounts bind, cache, tmpfs, secret and ssh mounts", async () => {
    const r = await conv(
      df(
        "FROM busybox AS src",
        "FROM busybox",
        "WORKDIR /w",
        "RUN --mount=type=bind,from=src,source=/etc,target=/mnt/etc \\",
        "    --mount=target=ctx,rw \\",
        "    --mount=type=cache,target=/root/.cache,sharing=locked \\",
        "    --mount=type=cache,id=gomod,target=/go/pkg,uid=1000,gid=1000,mode=0700 \\",
        "    --mount=type=tmpfs,target=/tmp,size=64m \\",
        "    --mount=type=secret,id=npmrc \\",
        "    --mount=type=secret,id=tok,env=TOKEN,required \\",
        "    --mount=type=ssh \\",
        "    --network=none --security=insecure true",
      ),
    );
    const e = execs(r.definition).at(-1)!;
    const m = Object.fromEntries(e.op.mounts.map((x) => [x.dest, x]));
    const etc = m["/mnt/etc"]!;
    assert.ok(etc.type === "bind" && etc.readonly && etc.selector === "/etc" && etc.output === SKIP_OUTPUT);
    const ctx = m["/w/ctx"]!;
    assert.ok(ctx.type === "bind" && !ctx.readonly && ctx.output === SKIP_OUTPUT, "rw binds have no output");
    const ctxSrc = inputVertex(r.definition, e.vertex, ctx.input).vertex.op as SourceOp;
    assert.equal(ctxSrc.identifier, "local://context");
    assert.equal(
      ctxSrc.attrs["local.followpaths"],
      undefined,
      "a mount of the whole context transfers all of it",
    );
    const cache = m["/root/.cache"]!;
    assert.ok(cache.type === "cache" && cache.cacheId === "/root/.cache" && cache.sharing === "locked");
    assert.equal(cache.input, SCRATCH);
    const gomod = m["/go/pkg"]!;
    assert.ok(gomod.type === "cache" && gomod.cacheId === "gomod" && gomod.selector === "/cache");
    const perms = inputVertex(r.definition, e.vertex, gomod.input);
    assert.deepEqual((perms.vertex.op as unknown as { steps: { action: unknown }[] }).steps[0]!.action, {
      type: "mkdir",
      path: "/cache",
      mode: 0o700,
      makeParents: false,
      owner: { user: { id: 1000 }, group: { id: 1000 } },
    });
    const tmp = m["/tmp"]!;
    assert.ok(tmp.type === "tmpfs" && tmp.size === 64 * 1024 * 1024);
    const npmrc = m["/run/secrets/npmrc"]!;
    assert.ok(
      npmrc.type === "secret" && npmrc.secretId === "npmrc" && npmrc.optional && npmrc.mode === 0o400,
    );
    assert.equal(m["/run/secrets/tok"], undefined, "an env secret has no file unless a target is given");
    assert.deepEqual(e.op.meta.secretEnv, [{ id: "tok", name: "TOKEN", optional: false }]);
    const ssh = m["/run/buildkit/ssh_agent.0"]!;
    assert.ok(ssh.type === "ssh" && ssh.sshId === "default" && ssh.optional);
    assert.ok(e.op.meta.env.includes("SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0"));
    assert.equal(e.op.network, "none");
    assert.equal(e.op.security, "insecure");
  });

  it("rejects a mount at / and mounts from later stages", async () => {
    await rejects(conv(df("FROM busybox", "RUN --mount=target=/ true")), /invalid mount target "\/"/, 2);
    await rejects(
      conv(df("FROM busybox AS a", "RUN --mount=from=b,target=/b true", "FROM busybox AS b"), {
        target: "a",
      }),
      /cannot mount from stage "b" to "\/b", stage needs to be defined before current command/,
      2,
    );
  });

  it("expands variables in mount options", async () => {
    const r = await conv(
      df("FROM busybox", "ARG CACHE=/cache/go", "RUN --mount=type=cache,target=$CACHE go build"),
    );
    const m = execs(r.definition)[0]!.op.mounts.find((x) => x.type === "cache")!;
    assert.equal(m.dest, "/cache/go");
  });

  it("masks secret env values in progress names", async () => {
    const r = await conv(
      df("FROM busybox", "ENV TOKEN=abc", "RUN --mount=type=secret,id=t,env=TOKEN echo $TOKEN"),
    );
    assert.match(execs(r.definition)[0]!.md!.description!, /echo \*\*\*\*$/);
  });

  it("applies the build's network, hosts, shm size and ulimits", async () => {
    const r = await conv(df("FROM busybox", "RUN true", "RUN --network=host true"), {
      network: "none",
      extraHosts: [{ host: "db", ip: "10.1.1.1" }],
      shmSize: 1 << 20,
      ulimits: [{ name: "nofile", soft: 10, hard: 20 }],
      cgroupParent: "kiln.slice",
    });
    const [a, b] = execs(r.definition);
    assert.equal(a!.op.network, "none");
    assert.equal(b!.op.network, "host");
    assert.deepEqual(a!.op.meta.extraHosts, [{ host: "db", ip: "10.1.1.1" }]);
    assert.deepEqual(a!.op.meta.ulimits, [{ name: "nofile", soft: 10, hard: 20 }]);
    assert.equal(a!.op.meta.cgroupParent, "kiln.slice");
    const shm = a!.op.mounts.find((m) => m.dest === "/dev/shm")!;
    assert.ok(shm.type === "tmpfs" && shm.size === 1 << 20);
  });

  it("does not cache stages named by noCacheStages", async () => {
    const text = df("FROM busybox AS a", "RUN one", "FROM a", "RUN two");
    const r = await conv(text, { noCacheStages: ["a"] });
    const [one, two] = execs(r.definition);
    assert.equal(one!.vertex.ignoreCache, true);
    assert.equal(two!.vertex.ignoreCache, undefined);
    assert.equal(r.ignoreCache, true);
    const all = await conv(text, { noCacheStages: true });
    assert.ok(execs(all.definition).every((e) => e.vertex.ignoreCache));
  });
});

describe("Dockerfile → LLB: WORKDIR and USER", () => {
  it("creates the working directory with a mkdir FileOp and runs there", async () => {
    const r = await conv(df("FROM busybox", "WORKDIR /app", "WORKDIR src", "RUN pwd"));
    const mk = fileOps(r.definition).map((f) => f.op.steps[0]!.action);
    assert.deepEqual(mk, [
      { type: "mkdir", path: "/app", mode: 0o755, makeParents: true },
      { type: "mkdir", path: "/app/src", mode: 0o755, makeParents: true },
    ]);
    assert.equal(execs(r.definition)[0]!.op.meta.cwd, "/app/src");
    assert.equal(r.imageConfig.config.WorkingDir, "/app/src");
    assert.deepEqual(
      newHistory(r).map((h) => [h.created_by, !!h.empty_layer]),
      [
        ["WORKDIR /app", false],
        ["WORKDIR /app/src", false],
        ["RUN /bin/sh -c pwd # buildkit", false],
      ],
    );
  });

  it("makes no op for WORKDIR /", async () => {
    const r = await conv(df("FROM busybox", "WORKDIR /", "RUN pwd"));
    assert.equal(fileOps(r.definition).length, 0);
    assert.equal(newHistory(r)[0]!.empty_layer, true);
  });

  it("creates the directory owned by the current USER and runs as that user", async () => {
    const r = await conv(df("FROM busybox", "USER app:staff", "WORKDIR /home/app", "RUN id"));
    const [mk] = fileOps(r.definition);
    assert.deepEqual((mk!.op.steps[0]!.action as { owner: unknown }).owner, {
      user: { name: "app" },
      group: { name: "staff" },
    });
    assert.equal(execs(r.definition)[0]!.op.meta.user, "app:staff");
    assert.equal(r.imageConfig.config.User, "app:staff");
  });

  it("starts from the base image's working dir and user", async () => {
    const r = await conv(df("FROM app:user", "RUN pwd"));
    const [e] = execs(r.definition);
    assert.equal(e!.op.meta.cwd, "/home/app");
    assert.equal(e!.op.meta.user, "app");
  });
});

describe("Dockerfile → LLB: COPY and ADD", () => {
  it("copies from the context, transferring only the named paths", async () => {
    const r = await conv(
      df("FROM busybox", "WORKDIR /app", "COPY go.mod go.sum ./", "COPY cmd/ ./cmd/", "COPY . ."),
    );
    const ctx = sources(r.definition).find((s) => s.op.identifier === "local://context")!;
    assert.equal(ctx.op.attrs["local.followpaths"], undefined, "COPY . needs the whole context");
    const r2 = await conv(df("FROM busybox", "WORKDIR /app", "COPY go.mod go.sum ./", "COPY cmd/ ./cmd/"));
    const ctx2 = sources(r2.definition).find((s) => s.op.identifier === "local://context")!;
    assert.equal(ctx2.op.attrs["local.followpaths"], '["cmd","go.mod","go.sum"]');
    assert.equal(ctx2.op.attrs["local.includepattern"], '["cmd","go.mod","go.sum"]');
    assert.equal(ctx2.op.attrs["local.sharedkeyhint"], "context");
    const cs = copies(r2.definition);
    assert.deepEqual(
      cs.map((c) => [c.src, c.dest]),
      [
        ["/go.mod", "/app/"],
        ["/go.sum", "/app/"],
        ["/cmd", "/app/cmd/"],
      ],
    );
    const c0 = cs[0]!;
    assert.ok(
      c0.followSymlink &&
        c0.dirCopyContents &&
        c0.createDestPath &&
        c0.allowWildcard &&
        c0.allowEmptyWildcard,
    );
    assert.equal(c0.attemptUnpackDockerCompatibility, false);
  });

  it("keeps the destination's trailing slash and resolves relative destinations", async () => {
    const r = await conv(
      df("FROM busybox", "WORKDIR /w", "COPY a b", "COPY a .", "COPY a /abs/", "COPY a sub/."),
    );
    assert.deepEqual(
      copies(r.definition).map((c) => c.dest),
      ["/w/b", "/w/", "/abs/", "/w/sub/."],
    );
  });

  it("applies --chown and --chmod", async () => {
    const r = await conv(
      df("FROM busybox", "COPY --chown=1000:1000 --chmod=640 a /a", "COPY --chown=app --chmod=u+x,g-w b /b"),
    );
    const [a, b] = copies(r.definition);
    assert.deepEqual(a!.owner, { user: { id: 1000 }, group: { id: 1000 } });
    assert.equal(a!.mode, 0o640);
    assert.deepEqual(b!.owner, { user: { name: "app" } });
    assert.equal(b!.modeSymbolic, "u+x,g-w");
    assert.equal(b!.mode, undefined);
    assert.deepEqual(history(r).slice(-2), [
      "COPY --chown=1000:1000 --chmod=640 a /a # buildkit",
      "COPY --chown=app --chmod=u+x,g-w b /b # buildkit",
    ]);
  });

  it("rejects bad --chmod values as BuildKit does", async () => {
    await rejects(
      conv(df("FROM busybox", "COPY --chmod=999 a /a")),
      /invalid chmod parameter: '999'. it should be octal string and between 0 and 07777/,
      2,
    );
    await rejects(conv(df("FROM busybox", "COPY --chmod=17777 a /a")), /invalid chmod parameter/, 2);
    await rejects(conv(df("FROM busybox", "COPY --chmod=u+q a /a")), /invalid mode/, 2);
  });

  it("copies with --link onto scratch and merges (names resolved in the stage)", async () => {
    const r = await conv(df("FROM busybox", "COPY --link --chown=app a /a"));
    const root = rootVertex(r.definition);
    const op = root.vertex.op as MergeOp;
    assert.equal(op.kind, "merge");
    assert.equal(root.md!.description, "[2/2] LINK COPY --link --chown=app a /a");
    const [lower, upper] = [
      inputVertex(r.definition, root.vertex, 0),
      inputVertex(r.definition, root.vertex, 1),
    ];
    assert.equal((lower.vertex.op as SourceOp).identifier, `docker-image://${BUSYBOX}`);
    const step = (upper.vertex.op as unknown as { steps: { input: number; action: CopyAction }[] }).steps[0]!;
    assert.equal(step.input, SCRATCH);
    assert.equal(upper.md!.description, "[2/2] COPY --link --chown=app a /a");
    assert.equal(upper.md!.progressGroup, root.md!.progressGroup);
    const lookup = step.action.owner!.user!.input!;
    assert.equal(inputVertex(r.definition, upper.vertex, lookup).digest, lower.digest);
    assert.equal(history(r).at(-1), "COPY --chown=app a /a # buildkit");
  });

  it("falls back to a plain copy for --link with --chmod", async () => {
    const r = await conv(df("FROM busybox", "COPY --link --chmod=755 a /a"));
    assert.equal(rootVertex(r.definition).vertex.op.kind, "file");
  });

  it("keeps parent directories with --parents", async () => {
    const r = await conv(df("FROM busybox", "COPY --parents a/b/c.txt x/./y/*.go /dst/"));
    const [c1, c2] = copies(r.definition);
    assert.deepEqual([c1!.src, c1!.includePatterns, c1!.requiredPaths], ["/", ["a/b/c.txt"], ["/a/b/c.txt"]]);
    assert.deepEqual([c2!.src, c2!.includePatterns, c2!.requiredPaths], ["/x", ["y/*.go"], undefined]);
    assert.equal(history(r).at(-1), "COPY --parents a/b/c.txt x/./y/*.go /dst/ # buildkit");
  });

  it("passes --exclude patterns", async () => {
    const r = await conv(df("FROM busybox", "COPY --exclude=*.md --exclude=tmp/ . /src/"));
    assert.deepEqual(copies(r.definition)[0]!.excludePatterns, ["*.md", "tmp/"]);
  });

  it("ADD downloads URLs into the destination with a checksum", async () => {
    const sum = `sha256:${"a".repeat(64)}`;
    const r = await conv(
      df("FROM busybox", `ADD --checksum=${sum} https://example.com/files/tool.tgz /opt/`),
    );
    const http = sources(r.definition).find((s) => s.op.identifier.startsWith("https://"))!;
    assert.deepEqual(http.op.attrs, { "http.checksum": sum, "http.filename": "tool.tgz" });
    const [c] = copies(r.definition);
    assert.equal(c!.src, "/tool.tgz");
    assert.equal(c!.dest, "/opt/");
    assert.equal(c!.attemptUnpackDockerCompatibility, false, "remote archives are not unpacked");
    assert.ok(!sources(r.definition).some((s) => s.op.identifier.startsWith("local://")));
  });

  it("ADD unpacks local archives; COPY does not", async () => {
    const r = await conv(
      df("FROM busybox", "ADD rootfs.tar.gz /", "COPY rootfs.tar.gz /", "ADD --unpack=false x.tar /"),
    );
    assert.deepEqual(
      copies(r.definition).map((c) => c.attemptUnpackDockerCompatibility),
      [true, false, false],
    );
  });

  it("ADD clones git repositories", async () => {
    const r = await conv(
      df(
        "FROM busybox",
        "ADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.13.0:frontend /src",
      ),
    );
    const g = sources(r.definition).find((s) => s.op.identifier.startsWith("git://"))!;
    assert.equal(g.op.identifier, "git://github.com/moby/buildkit.git#v0.13.0:frontend");
    assert.equal(g.op.attrs["git.keepgitdir"], "true");
    assert.equal(g.op.attrs["git.fullurl"], "https://github.com/moby/buildkit.git");
    assert.deepEqual(
      copies(r.definition).map((c) => [c.src, c.dest]),
      [["/", "/src"]],
    );
  });

  it("rejects URLs and git refs in COPY, and bad checksums", async () => {
    await rejects(
      conv(df("FROM busybox", "COPY https://example.com/a /a")),
      /source can't be a URL for COPY/,
      2,
    );
    await rejects(
      conv(df("FROM busybox", "COPY git@github.com:a/b.git /a")),
      /source can't be a git ref for COPY/,
      2,
    );
    await rejects(
      conv(df("FROM busybox", "ADD --checksum=sha256:00 a /a")),
      /checksum requires HTTP\(S\) or Git sources/,
      2,
    );
  });

  it("writes COPY heredocs as inline files", async () => {
    const r = await conv(
      df("FROM busybox", "ARG WHO=world", "COPY <<EOF /etc/greeting", "hello $WHO", "EOF"),
    );
    const mk = fileOps(r.definition).find((f) => f.op.steps[0]!.action.type === "mkfile")!;
    const a = mk.op.steps[0]!.action as { path: string; mode: number; data: string };
    assert.equal(a.path, "/EOF");
    assert.equal(a.mode, 0o644);
    assert.equal(Buffer.from(a.data, "base64").toString(), "hello world\n");
    assert.deepEqual(
      copies(r.definition).map((c) => [c.src, c.dest]),
      [["/EOF", "/etc/greeting"]],
    );
    assert.equal(history(r).at(-1), "COPY <<EOF /etc/greeting # buildkit");
    const quoted = await conv(df("FROM busybox", "ARG WHO=world", "COPY <<'EOF' /g", "hello $WHO", "EOF"));
    const q = fileOps(quoted.definition).find((f) => f.op.steps[0]!.action.type === "mkfile")!;
    assert.equal(
      Buffer.from((q.op.steps[0]!.action as { data: string }).data, "base64").toString(),
      "hello $WHO\n",
    );
  });

  it("records the paths copied from named local contexts", async () => {
    const r = await conv(df("FROM busybox", "COPY --from=assets img/ /img/", "COPY --from=assets css /css"), {
      namedContexts: { assets: { kind: "local", name: "assets" } },
    });
    const src = sources(r.definition).find((s) => s.op.identifier === "local://assets")!;
    assert.equal(src.op.attrs["local.followpaths"], '["css","img"]');
  });
});

describe("Dockerfile → LLB: image config", () => {
  it("starts from the base image's config, history and layers", async () => {
    const r = await conv(df("FROM nginx", "ENV A=1", "RUN true"));
    const c = r.imageConfig;
    assert.deepEqual(c.config.Entrypoint, ["/docker-entrypoint.sh"]);
    assert.deepEqual(c.config.Cmd, ["nginx", "-g", "daemon off;"]);
    assert.equal(c.config.StopSignal, "SIGQUIT");
    assert.deepEqual(c.config.Env, ["PATH=/usr/local/bin:/usr/bin:/bin", "NGINX_VERSION=1.27", "A=1"]);
    assert.equal(c.rootfs.diff_ids.length, 1);
    assert.equal(c.history![0]!.created_by, "/bin/sh -c #(nop) ADD file:rootfs in /");
    assert.equal(c.created, undefined);
    assert.equal(r.baseImageConfig!.config.Cmd![0], "nginx");
  });

  it("writes the config and history of each instruction like BuildKit", async () => {
    const r = await conv(
      df(
        "FROM busybox",
        "LABEL a=1 b=two",
        "ENV K=v",
        "EXPOSE 80 443/udp",
        "VOLUME /data /logs",
        "USER 1000",
        "STOPSIGNAL SIGINT",
        "HEALTHCHECK --interval=5s --retries=2 CMD curl -f http://localhost/",
        "MAINTAINER me",
        'ENTRYPOINT ["/app"]',
        "CMD echo help",
        "ONBUILD RUN echo child",
      ),
      { labels: { "org.opencontainers.image.source": "x" } },
    );
    const c = r.imageConfig.config;
    assert.deepEqual(c.Labels, { a: "1", b: "two", "org.opencontainers.image.source": "x" });
    assert.deepEqual(c.ExposedPorts, { "443/udp": {}, "80/tcp": {} });
    assert.deepEqual(c.Volumes, { "/data": {}, "/logs": {} });
    assert.equal(c.User, "1000");
    assert.equal(c.StopSignal, "SIGINT");
    assert.deepEqual(c.Healthcheck, {
      Test: ["CMD-SHELL", "curl -f http://localhost/"],
      Interval: 5e9,
      Timeout: 0,
      StartPeriod: 0,
      StartInterval: 0,
      Retries: 2,
    });
    assert.deepEqual(c.Entrypoint, ["/app"]);
    assert.deepEqual(c.Cmd, ["/bin/sh", "-c", "echo help"]);
    assert.equal(c.ArgsEscaped, true);
    assert.deepEqual(c.OnBuild, ["RUN echo child"]);
    assert.equal(r.imageConfig.author, "me");
    assert.deepEqual(
      newHistory(r).map((h) => h.created_by),
      [
        "LABEL a=1 b=two",
        "ENV K=v",
        "EXPOSE [443/udp 80/tcp]",
        "VOLUME [/data /logs]",
        "USER 1000",
        "STOPSIGNAL SIGINT",
        "HEALTHCHECK {Test:[CMD-SHELL curl -f http://localhost/] Interval:5s Timeout:0s StartPeriod:0s StartInterval:0s Retries:2}",
        "MAINTAINER me",
        'ENTRYPOINT ["/app"]',
        'CMD ["/bin/sh" "-c" "echo help"]',
      ],
    );
    assert.ok(newHistory(r).every((h) => h.empty_layer === true));
  });

  it("words HEALTHCHECK history with Go durations", async () => {
    const r = await conv(
      df(
        "FROM busybox",
        'HEALTHCHECK --interval=1s --timeout=10s --start-period=3s --start-interval=100ms --retries=5 CMD ["bin", "-c", "exit 0"]',
      ),
    );
    assert.equal(
      history(r).at(-1),
      "HEALTHCHECK {Test:[CMD bin -c exit 0] Interval:1s Timeout:10s StartPeriod:3s StartInterval:100ms Retries:5}",
    );
  });

  it("resets CMD when ENTRYPOINT comes later, unless the stage set CMD", async () => {
    const r = await conv(df("FROM busybox", 'ENTRYPOINT ["/e"]'));
    assert.equal(r.imageConfig.config.Cmd, null);
    const r2 = await conv(df("FROM busybox", 'CMD ["c"]', 'ENTRYPOINT ["/e"]'));
    assert.deepEqual(r2.imageConfig.config.Cmd, ["c"]);
  });

  it("disables the healthcheck with HEALTHCHECK NONE", async () => {
    const r = await conv(df("FROM busybox", "HEALTHCHECK NONE"));
    assert.deepEqual(r.imageConfig.config.Healthcheck!.Test, ["NONE"]);
  });

  it("rejects an unknown STOPSIGNAL and a bad EXPOSE", async () => {
    await rejects(conv(df("FROM busybox", "STOPSIGNAL SIGNOPE")), /Invalid signal: SIGNOPE/, 2);
    await rejects(conv(df("FROM busybox", "EXPOSE 80/xyz")), /invalid proto: xyz/, 2);
  });

  it("expands EXPOSE ranges", async () => {
    const r = await conv(df("FROM busybox", "EXPOSE 8000-8002/tcp"));
    assert.deepEqual(Object.keys(r.imageConfig.config.ExposedPorts!), ["8000/tcp", "8001/tcp", "8002/tcp"]);
  });

  it("gives a scratch image the target platform and a default PATH", async () => {
    const r = await conv(df("FROM scratch", "COPY a /a"), { targetPlatform: ARM64 });
    assert.equal(r.imageConfig.architecture, "arm64");
    assert.deepEqual(r.imageConfig.config.Env, [
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]);
  });

  it("stamps history and created files with SOURCE_DATE_EPOCH", async () => {
    const r = await conv(df("FROM busybox", "WORKDIR /x", "ENV A=1"), {
      buildArgs: { SOURCE_DATE_EPOCH: "1700000000" },
    });
    assert.equal(r.epoch, 1700000000);
    assert.equal(newHistory(r)[0]!.created, "2023-11-14T22:13:20Z");
    assert.equal(
      (fileOps(r.definition)[0]!.op.steps[0]!.action as { timestamp?: number }).timestamp,
      1700000000,
    );
  });
});

describe("Dockerfile → LLB: ONBUILD and named contexts", () => {
  it("runs the base image's ONBUILD triggers first, with their dependencies", async () => {
    const r = await conv(df("FROM onbuild", "RUN echo mine"));
    const names = vertices(r.definition)
      .map((v) => v.md?.description)
      .filter((d) => d?.startsWith("["));
    assert.deepEqual(names, [
      // named before the triggers are known, as BuildKit does
      `[1/2] FROM docker.io/library/onbuild:latest@${pinOf("docker.io/library/onbuild:latest", AMD64)}`,
      "[2/4] ONBUILD RUN echo from-onbuild",
      "[3/4] ONBUILD COPY --from=busybox /bin/busybox /ob-busybox",
      "[4/4] RUN echo mine",
    ]);
    assert.equal(r.imageConfig.config.OnBuild, undefined, "triggers are not inherited further");
  });

  it("runs a stage's ONBUILD in the stages built on it", async () => {
    const r = await conv(
      df("FROM busybox AS base", "ONBUILD RUN echo trigger", "FROM base", "RUN echo child"),
    );
    assert.deepEqual(
      execs(r.definition).map((e) => e.op.meta.args[2]),
      ["echo trigger", "echo child"],
    );
  });

  it("replaces a stage with a named context", async () => {
    const r = await conv(
      df("FROM busybox AS deps", "RUN exit 1", "FROM alpine:3.20", "COPY --from=deps /x /x"),
      {
        namedContexts: { deps: { kind: "image", ref: "busybox" } },
      },
    );
    assert.equal(execs(r.definition).length, 0);
    assert.ok(sources(r.definition).some((s) => s.op.identifier === `docker-image://${BUSYBOX}`));
  });

  it("replaces an image with a named context", async () => {
    const r = await conv(df("FROM alpine:3.20", "RUN true"), {
      namedContexts: { "alpine:3.20": { kind: "local", name: "myroot" } },
    });
    const [e] = execs(r.definition);
    assert.equal(
      (inputVertex(r.definition, e!.vertex, 0).vertex.op as SourceOp).identifier,
      "local://myroot",
    );
  });

  it("loads OCI layout contexts through resolveImage", async () => {
    const layout = "oci-layout:///srv/layout:v1";
    const r = await conv(df("FROM base", "RUN true"), {
      namedContexts: { base: { kind: "oci-layout", path: "/srv/layout", ref: "v1" } },
      resolveImage: resolver({
        [layout]: {
          architecture: "amd64",
          os: "linux",
          config: { Env: ["X=1"] },
          rootfs: { type: "layers", diff_ids: [] },
        },
      }),
    });
    const [e] = execs(r.definition);
    const src = inputVertex(r.definition, e!.vertex, 0).vertex.op as SourceOp;
    assert.equal(src.identifier, `oci-layout:///srv/layout@${pinOf(layout, AMD64)}`);
    assert.ok(e!.op.meta.env.includes("X=1"));
  });
});

describe("Dockerfile → LLB: more contexts and platforms", () => {
  it("uses another target's state for a target: context", async () => {
    const { image } = await import("../../../src/llb/builder.js");
    const other = image("alpine:3.20")
      .run({ args: ["make"] })
      .root();
    const r = await conv(df("FROM busybox", "COPY --from=tools /bin/tool /tool"), {
      namedContexts: { tools: { kind: "target", target: "tools", state: other } },
    });
    assert.deepEqual(
      execs(r.definition).map((e) => e.op.meta.args),
      [["make"]],
    );
    await rejects(
      conv(df("FROM busybox", "COPY --from=tools /bin/tool /tool"), {
        namedContexts: { tools: { kind: "target", target: "tools" } },
      }),
      /refers to target tools, which the engine has not built/,
      2,
    );
  });

  it("uses git and http URLs as named contexts", async () => {
    const r = await conv(df("FROM busybox", "COPY --from=src / /src", "COPY --from=file / /f"), {
      namedContexts: {
        src: { kind: "url", url: "https://github.com/o/r.git#main" },
        file: { kind: "url", url: "https://example.com/x/f.bin" },
      },
    });
    const ids = sources(r.definition).map((s) => s.op.identifier);
    assert.ok(ids.includes("git://github.com/o/r.git#main"));
    assert.ok(ids.includes("https://example.com/x/f.bin"));
  });

  it("warns when the base image is for another platform", async () => {
    const r = await conv(df("FROM armonly", "RUN true"));
    assert.deepEqual(
      r.warnings.map((w) => [w.rule, w.message]),
      [
        [
          "InvalidBaseImagePlatform",
          'Base image armonly was pulled with platform "linux/arm64", expected "linux/amd64" for current build',
        ],
      ],
    );
  });

  it("resolves each image once per platform", async () => {
    const calls: string[] = [];
    await conv(df("FROM busybox AS a", "FROM busybox AS b", "COPY --from=busybox / /", "COPY --from=a / /"), {
      resolveImage: resolver(undefined, calls),
    });
    assert.deepEqual(calls, ["docker.io/library/busybox:latest linux/amd64"]);
  });

  it("sets the hostname of RUN steps", async () => {
    const r = await conv(df("FROM busybox", "RUN hostname"), { hostname: "builder" });
    assert.equal(execs(r.definition)[0]!.op.meta.hostname, "builder");
  });

  it("prefixes cache ids with the namespace", async () => {
    const r = await conv(df("FROM busybox", "RUN --mount=type=cache,target=/c true"), {
      cacheIdNamespace: "ns",
    });
    const m = execs(r.definition)[0]!.op.mounts.find((x) => x.type === "cache")!;
    assert.ok(m.type === "cache" && m.cacheId === "ns//c");
  });
});

describe("Dockerfile → LLB: outline", () => {
  it("lists the target's args, secrets and ssh with descriptions", async () => {
    const o = await outline(
      df(
        "# GO_VERSION the Go version to build with",
        "ARG GO_VERSION=1.22",
        "ARG UNUSED=x",
        "FROM golang:${GO_VERSION} AS build",
        "# MODE build mode",
        "ARG MODE=release",
        "RUN --mount=type=secret,id=gh,required --mount=type=ssh,id=git make $MODE",
        "# out the result",
        "FROM scratch AS out",
        "COPY --from=build /bin/app /app",
      ),
    );
    assert.equal(o.name, "out");
    assert.equal(o.description, "the result");
    assert.deepEqual(
      o.args.map((a) => [a.name, a.value, a.description]),
      [
        ["GO_VERSION", "1.22", "the Go version to build with"],
        ["MODE", "release", "build mode"],
      ],
    );
    assert.deepEqual(
      o.secrets.map((s) => [s.name, s.required]),
      [["gh", true]],
    );
    assert.deepEqual(
      o.ssh.map((s) => [s.name, s.required]),
      [["git", false]],
    );
  });
});

describe("Dockerfile → LLB: determinism", () => {
  const text = df(
    "ARG BASE=busybox",
    "FROM ${BASE} AS build",
    "ARG V=1",
    "WORKDIR /src",
    "COPY --chown=1:1 . .",
    "RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=s make V=$V",
    "FROM scratch",
    "COPY --link --from=build /src/out /out",
    "COPY <<EOF /etc/motd",
    "hello",
    "EOF",
    'ENTRYPOINT ["/out"]',
  );

  async function marshalled(buildArgs: Record<string, string> = {}): Promise<string> {
    const { marshalDefinition } = await import("../../../src/llb/definition.js");
    const r = await conv(text, { buildArgs });
    return marshalDefinition(r.definition) + JSON.stringify(r.imageConfig);
  }

  it("gives byte-identical definitions in another process", async function () {
    this.timeout(60000);
    const { execFileSync } = await import("node:child_process");
    const { mkdtemp, writeFile, rm } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { join, resolve } = await import("node:path");
    const dir = await mkdtemp(join(tmpdir(), "kiln-determinism-"));
    try {
      const root = resolve(".");
      const script = join(dir, "child.mts");
      await writeFile(
        script,
        [
          `import { convertDockerfile } from ${JSON.stringify(join(root, "src/frontend/dockerfile/convert/index.ts"))};`,
          `import { marshalDefinition } from ${JSON.stringify(join(root, "src/llb/definition.ts"))};`,
          `import { resolver, AMD64 } from ${JSON.stringify(join(root, "test/unit/llb/fixtures.ts"))};`,
          `const r = await convertDockerfile(${JSON.stringify(text)}, { targetPlatform: AMD64, resolveImage: resolver() });`,
          "process.stdout.write(marshalDefinition(r.definition) + JSON.stringify(r.imageConfig));",
        ].join("\n"),
      );
      const out = execFileSync(process.execPath, ["--import", "tsx", script], {
        cwd: root,
        encoding: "utf8",
      });
      assert.equal(out, await marshalled());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("gives different digests for different args and platforms", async () => {
    const a = await marshalled();
    assert.equal(a, await marshalled());
    assert.notEqual(a, await marshalled({ V: "2" }));
    const arm = await conv(text, { targetPlatform: ARM64 });
    const amd = await conv(text);
    assert.notDeepEqual(arm.definition.root, amd.definition.root);
  });
});

describe("Dockerfile → LLB: errors", () => {
  it("name the file, the line and the line's text", async () => {
    const e = await rejects(
      conv(df("FROM busybox", "RUN --mount=type=cache,target=$X,mode=999 true"), {
        filename: "app.Dockerfile",
      }),
      /^app\.Dockerfile:2: /,
      2,
    );
    assert.equal(e.fileName, "app.Dockerfile");
    assert.match(e.format(), /2 \| RUN --mount=type=cache,target=\$X,mode=999 true/);
  });
});
