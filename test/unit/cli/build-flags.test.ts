import assert from "node:assert/strict";
import { UsageError } from "../../../cli-plugin/errors.js";
import {
  emptyRawFlags,
  parseAddHost,
  parseAnnotationFlag,
  parseBuildArgs,
  parseBuildContext,
  parseBuildFlags,
  parseByteSize,
  parseCacheSpec,
  parseOutput,
  parseSecret,
  parseSsh,
  parseUlimit,
  type RawBuildFlags,
  resolveOutputs,
} from "../../../cli-plugin/options/build-flags.js";

const raw = (given: Partial<RawBuildFlags> = {}): RawBuildFlags => ({ ...emptyRawFlags(), ...given });

describe("kiln build flags", () => {
  it("reads a bare -o PATH as a local output and - as a tar to stdout", () => {
    assert.deepEqual(parseOutput("out"), { type: "local", dest: "out", attrs: {} });
    assert.deepEqual(parseOutput("-"), { type: "tar", dest: "-", attrs: {} });
  });

  it("makes type=registry an image output that pushes", () => {
    const o = parseOutput("type=registry,name=r/app:1");
    assert.equal(o.type, "image");
    assert.ok(o.type === "image" && o.push && o.names[0] === "r/app:1");
  });

  it("keeps quoted commas inside one CSV field", () => {
    const o = parseOutput('type=image,"name=a/b:1,a/b:2"');
    assert.ok(o.type === "image");
    assert.deepEqual(o.type === "image" && o.names, ["a/b:1", "a/b:2"]);
  });

  it("refuses an unknown output type with the list of types", () => {
    assert.throws(
      () => parseOutput("type=bogus"),
      (e: Error) => e instanceof UsageError && /local, tar, oci, docker, image, registry/.test(e.message),
    );
  });

  it("turns --push into push=true on the image output, or adds one", () => {
    assert.deepEqual(
      resolveOutputs(raw({ push: true, tag: ["r/a:1"] })).map((o) => o.type === "image" && [o.push, o.names]),
      [[true, ["r/a:1"]]],
    );
  });

  it("adds a docker output for --load named by -t", () => {
    const outs = resolveOutputs(raw({ load: true, tag: ["app:dev"] }));
    assert.equal(outs.length, 1);
    assert.ok(outs[0]!.type === "docker" && outs[0]!.names[0] === "app:dev" && outs[0]!.dest === undefined);
  });

  it("turns --annotation into the exporter attributes Buildx gives every image output", () => {
    assert.deepEqual(parseAnnotationFlag("org.opencontainers.image.title=App"), [
      "annotation.org.opencontainers.image.title",
      "App",
    ]);
    assert.deepEqual(parseAnnotationFlag("index:k=v=w"), ["annotation-index.k", "v=w"]);
    assert.deepEqual(parseAnnotationFlag("manifest[linux/arm64]:k=v"), [
      "annotation-manifest[linux/arm64].k",
      "v",
    ]);
    assert.deepEqual(parseAnnotationFlag("manifest-descriptor:k=v"), [
      "annotation-manifest-descriptor.k",
      "v",
    ]);
    assert.throws(() => parseAnnotationFlag("layer:k=v"), /unknown annotation type "layer"/);
    assert.throws(() => parseAnnotationFlag("k"), /expected key=value/);
    const outs = resolveOutputs(
      raw({
        push: true,
        load: true,
        tag: ["r/a:1"],
        annotation: ["index:i=1", "m=2"],
        output: ["type=local,dest=o"],
      }),
    );
    for (const o of outs) {
      if (o.type === "local") assert.equal(o.attrs["annotation.m"], undefined);
      else assert.deepEqual([o.attrs["annotation-index.i"], o.attrs["annotation.m"]], ["1", "2"], o.type);
    }
  });

  it("reads a bare cache value as a registry ref", () => {
    assert.deepEqual(parseCacheSpec("--cache-from", "r/app:cache"), {
      type: "registry",
      attrs: { ref: "r/app:cache" },
    });
  });

  it("guesses an env secret when a variable of that id exists, a file otherwise", () => {
    assert.deepEqual(parseSecret("id=TOKEN", { TOKEN: "x" }).source, { kind: "env", name: "TOKEN" });
    assert.deepEqual(parseSecret("id=key,src=/k", {}).source, { kind: "file", path: "/k" });
    assert.deepEqual(parseSecret("id=aws,env=AWS_KEY", {}).source, { kind: "env", name: "AWS_KEY" });
  });

  it("reads --ssh default and ID=paths", () => {
    assert.deepEqual(parseSsh("default"), { id: "default", paths: [] });
    assert.deepEqual(parseSsh("git=/a.sock,/b.key"), { id: "git", paths: ["/a.sock", "/b.key"] });
  });

  it("takes a bare --build-arg's value from the environment and drops it when unset", () => {
    assert.deepEqual(parseBuildArgs(["A=1", "B", "C"], { B: "from-env" }), { A: "1", B: "from-env" });
  });

  it("passes the client's SOURCE_DATE_EPOCH on as a build argument unless --build-arg sets it", () => {
    assert.deepEqual(parseBuildArgs([], { SOURCE_DATE_EPOCH: "1700000000" }), {
      SOURCE_DATE_EPOCH: "1700000000",
    });
    assert.deepEqual(parseBuildArgs(["SOURCE_DATE_EPOCH=5"], { SOURCE_DATE_EPOCH: "1700000000" }), {
      SOURCE_DATE_EPOCH: "5",
    });
  });

  it("recognises every --build-context form", () => {
    assert.deepEqual(parseBuildContext("base=docker-image://alpine:3"), [
      "base",
      { kind: "image", ref: "alpine:3" },
    ]);
    assert.deepEqual(parseBuildContext("lay=oci-layout:///x/y:v1"), [
      "lay",
      { kind: "oci-layout", path: "/x/y", ref: "v1" },
    ]);
    assert.deepEqual(parseBuildContext("src=../src"), ["src", { kind: "local", path: "../src" }]);
    assert.deepEqual(parseBuildContext("g=https://h/r.git#main"), [
      "g",
      { kind: "url", url: "https://h/r.git#main" },
    ]);
  });

  it("parses sizes, ulimits and extra hosts as Docker does", () => {
    assert.equal(parseByteSize("--shm-size", "64m"), 64 * 1024 * 1024);
    assert.deepEqual(parseUlimit("nofile=1024:2048"), { name: "nofile", soft: 1024, hard: 2048 });
    assert.deepEqual(parseAddHost("db:10.0.0.5"), { host: "db", ip: "10.0.0.5" });
    assert.deepEqual(parseAddHost("db=10.0.0.5"), { host: "db", ip: "10.0.0.5" });
  });

  it("rejects a bad --progress, --network or --call as a usage error", () => {
    assert.throws(() => parseBuildFlags(".", raw({ progress: "fancy" }), {}), UsageError);
    assert.throws(() => parseBuildFlags(".", raw({ network: "bridge" }), {}), UsageError);
    assert.throws(() => parseBuildFlags(".", raw({ call: "lint" }), {}), UsageError);
  });

  it("makes --check mean --call=check and -q mean quiet progress", () => {
    const { request, client } = parseBuildFlags(".", raw({ check: true, quiet: true }), {});
    assert.equal(request.call, "check");
    assert.equal(client.progress, "quiet");
  });

  it("reports a missing context directory as a usage error", () => {
    assert.throws(() => parseBuildFlags("/no/such/dir", raw(), {}), /path "\/no\/such\/dir" not found/);
  });
});
