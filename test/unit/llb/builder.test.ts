import assert from "node:assert/strict";
import {
  copy,
  deferred,
  diff,
  EnvList,
  git,
  http,
  image,
  local,
  marshal,
  merge,
  mkdir,
  mkfile,
  normalizeActionPath,
  ociLayout,
  parseChown,
  rm,
  scratch,
} from "../../../src/llb/builder.js";
import { marshalDefinition, unmarshalDefinition } from "../../../src/llb/definition.js";
import { dumpLlb } from "../../../src/llb/dump.js";
import type { CopyAction, ExecOp, FileOp, MergeOp, SourceOp } from "../../../src/llb/ops.js";
import { SCRATCH, SKIP_OUTPUT } from "../../../src/llb/ops.js";
import { AMD64, ARM64, execs, fileOps, rootVertex, sources, vertices } from "./fixtures.js";

describe("llb builder: EnvList", () => {
  it("keeps keys in the order of their last assignment, as BuildKit's EnvList", () => {
    const e = EnvList.empty.set("A", "1").set("B", "2").set("A", "3");
    assert.deepEqual(e.toArray(), ["B=2", "A=3"]);
    assert.equal(e.get("A"), "3");
    assert.deepEqual(e.delete("B").toArray(), ["A=3"]);
    assert.deepEqual(e.setDefault("A", "x").toArray(), ["B=2", "A=3"]);
    assert.deepEqual(EnvList.from(["X=1", "Y", "X=2"]).toArray(), ["Y=", "X=2"]);
  });
  it("is immutable", () => {
    const a = EnvList.empty.set("A", "1");
    a.set("B", "2");
    assert.deepEqual(a.toArray(), ["A=1"]);
  });
});

describe("llb builder: sources", () => {
  it("normalises image references and puts the platform on the vertex", () => {
    const def = marshal(image("busybox", { platform: ARM64 }), { platform: AMD64 });
    const v = rootVertex(def);
    const op = v.vertex.op as SourceOp;
    assert.equal(op.identifier, "docker-image://docker.io/library/busybox:latest");
    assert.deepEqual(v.vertex.platform, ARM64);
    assert.deepEqual(op.attrs, {});
  });
  it("uses the marshal default platform for images without one", () => {
    const def = marshal(image("alpine:3.20"), { platform: AMD64 });
    assert.deepEqual(rootVertex(def).vertex.platform, AMD64);
  });
  it("records the resolve mode only when it is not the default", () => {
    const op = rootVertex(marshal(image("alpine", { resolveMode: "pull" }))).vertex.op as SourceOp;
    assert.equal(op.attrs["image.resolvemode"], "pull");
  });
  it("local sources carry JSON pattern attrs and no platform", () => {
    const def = marshal(
      local("context", {
        include: ["a", "b/c"],
        exclude: ["*.md"],
        followPaths: ["a"],
        sharedKeyHint: "context",
      }),
      { platform: AMD64 },
    );
    const v = rootVertex(def);
    const op = v.vertex.op as SourceOp;
    assert.equal(op.identifier, "local://context");
    assert.equal(op.attrs["local.includepattern"], '["a","b/c"]');
    assert.equal(op.attrs["local.excludepatterns"], '["*.md"]');
    assert.equal(op.attrs["local.followpaths"], '["a"]');
    assert.equal(op.attrs["local.sharedkeyhint"], "context");
    assert.equal(v.vertex.platform, undefined);
  });
  it("git sources get BuildKit's identifier, full URL and auth secret attrs", () => {
    const op = rootVertex(
      marshal(git("https://github.com/moby/buildkit.git", "v0.13:docs", { keepGitDir: true })),
    ).vertex.op as SourceOp;
    assert.equal(op.identifier, "git://github.com/moby/buildkit.git#v0.13:docs");
    assert.equal(op.attrs["git.fullurl"], "https://github.com/moby/buildkit.git");
    assert.equal(op.attrs["git.keepgitdir"], "true");
    assert.equal(op.attrs["git.authheadersecret"], "GIT_AUTH_HEADER");
    assert.equal(op.attrs["git.authtokensecret"], "GIT_AUTH_TOKEN");
    const ssh = rootVertex(marshal(git("git@github.com:moby/buildkit.git"))).vertex.op as SourceOp;
    assert.equal(ssh.identifier, "git://github.com/moby/buildkit.git");
    assert.equal(ssh.attrs["git.mountsshsock"], "default");
    const bare = rootVertex(marshal(git("github.com/moby/buildkit"))).vertex.op as SourceOp;
    assert.equal(bare.attrs["git.fullurl"], "https://github.com/moby/buildkit");
  });
  it("http sources carry checksum, filename and permissions", () => {
    const op = rootVertex(
      marshal(
        http("https://example.com/a.tgz", {
          checksum: `sha256:${"0".repeat(64)}`,
          filename: "a.tgz",
          perm: 0o644,
        }),
      ),
    ).vertex.op as SourceOp;
    assert.equal(op.identifier, "https://example.com/a.tgz");
    assert.deepEqual(op.attrs, {
      "http.checksum": `sha256:${"0".repeat(64)}`,
      "http.filename": "a.tgz",
      "http.perm": "0644",
    });
  });
  it("oci-layout sources name the layout and the reference", () => {
    const op = rootVertex(marshal(ociLayout("/srv/layout", `@sha256:${"1".repeat(64)}`))).vertex
      .op as SourceOp;
    assert.equal(op.identifier, `oci-layout:///srv/layout@sha256:${"1".repeat(64)}`);
    const tagged = rootVertex(marshal(ociLayout("/srv/layout", "v1"))).vertex.op as SourceOp;
    assert.equal(tagged.identifier, "oci-layout:///srv/layout:v1");
  });
  it("scratch marshals to a definition with no root", () => {
    const def = marshal(scratch());
    assert.equal(def.root, undefined);
    assert.equal(def.vertices.size, 0);
  });
});

describe("llb builder: run", () => {
  const base = image("busybox").addEnv("A", "1").dir("/work").user("nobody");

  it("takes env, cwd and user from the state and adds a default PATH", () => {
    const def = marshal(base.run({ args: ["sh", "-c", "true"] }).root(), { platform: AMD64 });
    const [e] = execs(def);
    assert.deepEqual(e!.op.meta.args, ["sh", "-c", "true"]);
    assert.deepEqual(e!.op.meta.env, [
      "A=1",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]);
    assert.equal(e!.op.meta.cwd, "/work");
    assert.equal(e!.op.meta.user, "nobody");
    assert.deepEqual(e!.vertex.platform, AMD64);
    assert.equal(e!.op.network, "sandbox");
    assert.equal(e!.op.security, "sandbox");
  });
  it("defaults the working directory to /", () => {
    const [e] = execs(
      marshal(
        image("busybox")
          .run({ args: ["true"] })
          .root(),
      ),
    );
    assert.equal(e!.op.meta.cwd, "/");
  });
  it("sorts mounts by target and numbers the outputs of writable binds", () => {
    const st = image("busybox").run({
      args: ["true"],
      mounts: [
        { dest: "/z", source: image("alpine") },
        { dest: "/cache", cache: { id: "c1", sharing: "locked" } },
        { dest: "/a", source: local("context"), readonly: true, selector: "/src" },
        { dest: "/t", tmpfs: { size: 1024 } },
        { dest: "/n", source: image("alpine"), noOutput: true },
      ],
    });
    const def = marshal(st.getMount("/z"));
    const [e] = execs(def);
    const m = e!.op.mounts;
    assert.deepEqual(
      m.map((x) => [x.dest, x.type, x.output]),
      [
        ["/", "bind", 0],
        ["/a", "bind", SKIP_OUTPUT],
        ["/cache", "cache", SKIP_OUTPUT],
        ["/n", "bind", SKIP_OUTPUT],
        ["/t", "tmpfs", SKIP_OUTPUT],
        ["/z", "bind", 1],
      ],
    );
    assert.equal(m[1]!.selector, "/src");
    assert.equal(m[1]!.readonly, true);
    const cache = m[2]!;
    assert.ok(
      cache.type === "cache" &&
        cache.cacheId === "c1" &&
        cache.sharing === "locked" &&
        cache.input === SCRATCH,
    );
    const tmpfs = m[4]!;
    assert.ok(tmpfs.type === "tmpfs" && tmpfs.size === 1024 && tmpfs.input === SCRATCH);
    // the same alpine output is one input, used twice
    assert.equal(m[3]!.input, m[5]!.input);
    assert.equal(e!.vertex.inputs.length, 3);
    assert.deepEqual(def.root, { vertex: e!.digest, index: 1 });
  });
  it("adds secret and ssh mounts with BuildKit's defaults", () => {
    const [e] = execs(
      marshal(
        image("busybox")
          .run({
            args: ["true"],
            secrets: [
              { id: "tok", target: "/run/secrets/tok" },
              { id: "env-only", env: "TOKEN", optional: true },
            ],
            ssh: [{}, { id: "gh", target: "/ssh" }],
          })
          .root(),
      ),
    );
    const secret = e!.op.mounts.find((m) => m.type === "secret")!;
    assert.ok(secret.type === "secret");
    assert.deepEqual(
      {
        id: secret.secretId,
        dest: secret.dest,
        mode: secret.mode,
        uid: secret.uid,
        optional: secret.optional,
      },
      { id: "tok", dest: "/run/secrets/tok", mode: 0o400, uid: 0, optional: false },
    );
    assert.deepEqual(e!.op.meta.secretEnv, [{ id: "env-only", name: "TOKEN", optional: true }]);
    const ssh = e!.op.mounts.filter((m) => m.type === "ssh");
    assert.deepEqual(
      ssh.map((m) => (m.type === "ssh" ? [m.sshId, m.dest, m.mode] : [])),
      [
        ["default", "/run/buildkit/ssh_agent.0", 0o600],
        ["gh", "/ssh", 0o600],
      ],
    );
    assert.ok(e!.op.meta.env.includes("SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0"));
  });
  it("passes network, security, proxy env, hosts and ulimits", () => {
    const [e] = execs(
      marshal(
        image("busybox")
          .network("none")
          .run({
            args: ["true"],
            security: "insecure",
            proxyEnv: { httpProxy: "http://proxy:3128", noProxy: "" },
            extraHosts: [{ host: "db", ip: "10.0.0.2" }],
            ulimits: [{ name: "nofile", soft: 1024, hard: 2048 }],
            validExitCodes: [0, 1],
          })
          .root(),
      ),
    );
    assert.equal(e!.op.network, "none");
    assert.equal(e!.op.security, "insecure");
    assert.deepEqual(e!.op.meta.proxyEnv, { httpProxy: "http://proxy:3128" });
    assert.deepEqual(e!.op.meta.extraHosts, [{ host: "db", ip: "10.0.0.2" }]);
    assert.deepEqual(e!.op.meta.ulimits, [{ name: "nofile", soft: 1024, hard: 2048 }]);
    assert.deepEqual(e!.op.meta.validExitCodes, [0, 1]);
  });
  it("rejects two mounts at one target", () => {
    assert.throws(
      () => image("busybox").run({ args: ["true"], mounts: [{ dest: "/" }] }),
      /duplicate mount target/,
    );
  });
  it("chains runs through the root output", () => {
    const st = image("busybox")
      .run({ args: ["a"] })
      .root()
      .run({ args: ["b"] })
      .root();
    const def = marshal(st);
    const [a, b] = execs(def);
    assert.deepEqual(b!.vertex.inputs[0], { vertex: a!.digest, index: 0 });
  });
});

describe("llb builder: file actions", () => {
  it("chains actions in one FileOp, later steps reading earlier ones", () => {
    const ctx = local("context");
    const st = image("busybox")
      .dir("/app")
      .file(
        mkdir("data", 0o755, { makeParents: true })
          .copy(ctx, "src/", "./", { dirCopyContents: true, owner: parseChown("1000:app") })
          .mkfile("/etc/x", 0o644, "hello")
          .rm("tmp", { allowNotFound: true })
          .symlink("/app/data", "/data"),
      );
    const def = marshal(st);
    const [f] = fileOps(def);
    const steps = f!.op.steps;
    assert.equal(steps.length, 5);
    assert.deepEqual(
      steps.map((s) => [s.input, !!s.inputIsAction, s.output]),
      [
        [0, false, SKIP_OUTPUT],
        [0, true, SKIP_OUTPUT],
        [1, true, SKIP_OUTPUT],
        [2, true, SKIP_OUTPUT],
        [3, true, 0],
      ],
    );
    assert.deepEqual(steps[0]!.action, { type: "mkdir", path: "/app/data", mode: 0o755, makeParents: true });
    const c = steps[1]!.action as CopyAction;
    assert.equal(c.src, "/src");
    assert.equal(c.dest, "/app/");
    assert.deepEqual(c.owner, { user: { id: 1000 }, group: { name: "app" } });
    assert.equal(steps[1]!.secondaryInput, 1);
    const mk = steps[2]!.action;
    assert.ok(mk.type === "mkfile" && Buffer.from(mk.data, "base64").toString() === "hello");
    assert.deepEqual(steps[3]!.action, {
      type: "rm",
      path: "/app/tmp",
      allowNotFound: true,
      allowWildcard: false,
    });
    assert.deepEqual(steps[4]!.action, { type: "symlink", oldpath: "/app/data", newpath: "/data" });
    assert.equal(f!.vertex.platform, undefined, "a FileOp is not platform specific");
  });
  it("copies from scratch use the SCRATCH input", () => {
    const [f] = fileOps(marshal(scratch().file(copy(scratch(), "/a", "/b"))));
    assert.equal(f!.op.steps[0]!.input, SCRATCH);
    assert.equal(f!.op.steps[0]!.secondaryInput, SCRATCH);
    assert.equal(f!.vertex.inputs.length, 0);
  });
  it("resolves chown names against another state when asked (COPY --link --chown)", () => {
    const target = image("busybox");
    const [f] = fileOps(
      marshal(scratch().file(copy(local("c"), "/a", "/a", { owner: parseChown("app", target) }))),
    );
    const c = f!.op.steps[0]!.action as CopyAction;
    assert.deepEqual(c.owner, { user: { name: "app", input: 1 } });
  });
  it("parses chown specs as BuildKit's WithUser", () => {
    assert.deepEqual(parseChown("root"), { user: { id: 0 }, group: undefined, lookup: undefined });
    assert.deepEqual(parseChown("1:2").group, { id: 2 });
    assert.deepEqual(parseChown("app:staff").group, { name: "staff" });
  });
  it("normalises paths like BuildKit, keeping a trailing slash where asked", () => {
    assert.equal(normalizeActionPath("/a", "b/", true), "/a/b/");
    assert.equal(normalizeActionPath("/a", "b/.", true), "/a/b/.");
    assert.equal(normalizeActionPath("", "x", false), "/x");
    assert.equal(normalizeActionPath("/a", "../../x/", false), "/x");
    assert.equal(normalizeActionPath("/", ".", true), "/");
  });
  it("masks mkdir modes to permission bits", () => {
    const [f] = fileOps(marshal(scratch().file(mkdir("/d", 0o40755))));
    assert.equal((f!.op.steps[0]!.action as { mode: number }).mode, 0o755);
    void rm;
    void mkfile;
  });
});

describe("llb builder: merge and diff", () => {
  it("merges non-scratch inputs in order", () => {
    const a = image("alpine");
    const b = scratch().file(mkfile("/x", 0o644, "x"));
    const def = marshal(merge([a, scratch(), b]), { platform: AMD64 });
    const v = rootVertex(def);
    const op = v.vertex.op as MergeOp;
    assert.equal(op.kind, "merge");
    assert.deepEqual(op.inputs, [0, 1]);
    assert.deepEqual(v.vertex.platform, AMD64);
  });
  it("returns the only real input of a merge as it is", () => {
    const a = image("alpine");
    assert.equal(merge([scratch(), a]), a);
    assert.ok(merge([scratch()]).isScratch);
  });
  it("diffs a lower and an upper state", () => {
    const lower = image("alpine");
    const upper = lower.run({ args: ["touch", "/x"] }).root();
    const v = rootVertex(marshal(diff(lower, upper)));
    assert.deepEqual(v.vertex.op, { kind: "diff", lower: 0, upper: 1 });
    const fromScratch = rootVertex(marshal(diff(scratch(), upper)));
    assert.deepEqual(fromScratch.vertex.op, { kind: "diff", lower: SCRATCH, upper: 0 });
  });
});

describe("llb builder: marshal", () => {
  const build = (arg: string) =>
    image("busybox")
      .addEnv("X", arg)
      .run({ args: ["sh", "-c", "echo $X"], description: "[1/1] RUN echo" })
      .root()
      .file(copy(local("context"), "a", "/a"), { description: "COPY a /a" });

  it("is deterministic: the same graph gives the same bytes", () => {
    const a = marshalDefinition(marshal(build("1"), { platform: AMD64 }));
    const b = marshalDefinition(marshal(build("1"), { platform: AMD64 }));
    assert.equal(a, b);
    assert.notEqual(a, marshalDefinition(marshal(build("2"), { platform: AMD64 })));
    assert.notEqual(a, marshalDefinition(marshal(build("1"), { platform: ARM64 })));
  });
  it("round-trips through the serialized form with verified digests", () => {
    const def = marshal(build("1"), { platform: AMD64 });
    const back = unmarshalDefinition(marshalDefinition(def));
    assert.deepEqual(back.root, def.root);
    assert.equal(back.vertices.size, def.vertices.size);
    assert.equal(back.metadata.get(def.root!.vertex)?.description, "COPY a /a");
  });
  it("keeps metadata out of the digest", () => {
    const a = marshal(
      image("busybox")
        .run({ args: ["true"], description: "one" })
        .root(),
    );
    const b = marshal(
      image("busybox")
        .run({ args: ["true"], description: "two" })
        .root(),
    );
    assert.deepEqual(a.root, b.root);
  });
  it("puts ignoreCache in the vertex (and so the digest)", () => {
    const a = marshal(
      image("busybox")
        .run({ args: ["true"] })
        .root(),
    );
    const b = marshal(
      image("busybox")
        .run({ args: ["true"], ignoreCache: true })
        .root(),
    );
    assert.notDeepEqual(a.root, b.root);
    assert.equal(rootVertex(b).vertex.ignoreCache, true);
  });
  it("resolves deferred states at marshal time, once", () => {
    let calls = 0;
    let paths: string[] = [];
    const ctx = deferred(() => {
      calls++;
      return local("context", { followPaths: paths });
    });
    const st = image("busybox")
      .file(copy(ctx, "/a", "/a"))
      .file(copy(ctx, "/b", "/b"));
    paths = ["a", "b"];
    const def = marshal(st);
    assert.equal(calls, 1);
    const [src] = sources(def).filter((s) => s.op.identifier === "local://context");
    assert.equal(src!.op.attrs["local.followpaths"], '["a","b"]');
  });
  it("dumps a readable JSON form with decoded inline files", () => {
    const def = marshal(scratch().file(mkfile("/hello", 0o644, "hi\n")));
    const text = dumpLlb(def);
    const parsed = JSON.parse(text);
    assert.equal(parsed.vertices.length, 1);
    assert.equal(parsed.vertices[0].op.steps[0].action.text, "hi\n");
    assert.equal(text, dumpLlb(def));
    assert.equal(vertices(def).length, 1);
    void (rootVertex(def).vertex.op as FileOp);
    void ({} as ExecOp);
  });
});
