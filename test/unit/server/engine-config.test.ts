import assert from "node:assert/strict";
import { EngineConfigError, parseEngineConfig } from "../../../src/server/engine-config.js";

describe("kilnd engine config (buildkitd.toml keys)", () => {
  it("reads registry mirrors, without scheme or trailing slash", () => {
    const c = parseEngineConfig(
      '[registry."docker.io"]\n  mirrors = ["https://mirror.example:5000/", "m2.example"]\n',
    );
    assert.deepEqual(c.registryMirrors, { "docker.io": ["mirror.example:5000", "m2.example"] });
  });

  it("treats http = true and insecure = true as insecure registries", () => {
    const c = parseEngineConfig(
      '[registry."a.example:5000"]\n  http = true\n[registry."b.example"]\n  insecure = true\n[registry."c.example"]\n  http = false\n',
    );
    assert.deepEqual(c.insecureRegistries, ["a.example:5000", "b.example"]);
  });

  it("allows the insecure entitlements it lists and refuses unknown ones", () => {
    assert.deepEqual(
      parseEngineConfig('insecure-entitlements = ["network.host", "security.insecure"]\n')
        .allowedEntitlements,
      ["network.host", "security.insecure"],
    );
    assert.throws(
      () => parseEngineConfig('insecure-entitlements = ["device"]\n', "x.toml"),
      (err: unknown) =>
        err instanceof EngineConfigError &&
        /x\.toml: insecure-entitlements: unknown entitlement "device"/.test(err.message),
    );
  });

  it("reads GC rules with sizes, durations, filters and all", () => {
    const c = parseEngineConfig(
      [
        "[worker.oci]",
        "  gc = false",
        "  gckeepstorage = 9000",
        "  [[worker.oci.gcpolicy]]",
        '    keepBytes = "512MB"',
        '    keepDuration = "48h"',
        '    filters = ["type==source.local", "type==exec.cachemount"]',
        "  [[worker.oci.gcpolicy]]",
        "    all = true",
        "    keepDuration = 3600",
        '    reservedSpace = "10%"',
        "",
      ].join("\n"),
    );
    assert.equal(c.gc, false);
    assert.deepEqual(c.gcSpace, { maxUsedSpace: { bytes: 9000 * 1e6 } });
    assert.deepEqual(c.gcPolicy, [
      {
        maxUsedSpace: { bytes: 512 * 1024 ** 2 },
        keepDurationMs: 48 * 3600_000,
        filters: ["type==source.local", "type==exec.cachemount"],
      },
      { all: true, keepDurationMs: 3600_000, reservedSpace: { percentage: 10 } },
    ]);
  });

  it("names keys it does not act on instead of failing on them", () => {
    const c = parseEngineConfig(
      'debug = true\n[registry."r.example"]\n  ca = ["/x.pem"]\n[worker.containerd]\n  enabled = false\n',
    );
    assert.deepEqual([...c.ignored].sort(), ['registry."r.example".ca', "debug", "worker.containerd"].sort());
  });

  it("points at the line of a TOML syntax error", () => {
    assert.throws(
      () => parseEngineConfig('[registry."x"\nmirrors = 1\n', "bad.toml"),
      (err: unknown) =>
        err instanceof EngineConfigError &&
        /^bad\.toml \(line 1, column \d+\): not valid TOML/.test(err.message),
    );
  });

  it("refuses a GC rule key it does not know, naming the rule", () => {
    assert.throws(
      () => parseEngineConfig("[[worker.oci.gcpolicy]]\n  keepBites = 1\n"),
      /worker\.oci\.gcpolicy\[0\]\.keepBites: unknown key/,
    );
  });
});
