import assert from "node:assert/strict";
import { mergeScopes } from "../../../src/registry/auth.js";
import { parseWwwAuthenticate } from "../../../src/registry/www-authenticate.js";

describe("parseWwwAuthenticate", () => {
  it("parses a Bearer challenge's realm, service and scope", () => {
    const [c] = parseWwwAuthenticate(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
    );
    assert.deepEqual(c, {
      scheme: "bearer",
      params: {
        realm: "https://auth.docker.io/token",
        service: "registry.docker.io",
        scope: "repository:library/busybox:pull",
      },
    });
  });

  it("parses a Basic challenge as distribution's htpasswd auth sends it", () => {
    assert.deepEqual(parseWwwAuthenticate('Basic realm="kiln-test"'), [
      { scheme: "basic", params: { realm: "kiln-test" } },
    ]);
  });

  it("keeps commas inside quoted values (multi-action scopes)", () => {
    const [c] = parseWwwAuthenticate('Bearer realm="https://a/token",scope="repository:x/y:pull,push"');
    assert.equal(c!.params.scope, "repository:x/y:pull,push");
  });

  it("splits several challenges in one header value", () => {
    const cs = parseWwwAuthenticate('Basic realm="r1", Bearer realm="https://t/token", service="s"');
    assert.deepEqual(
      cs.map((c) => [c.scheme, c.params]),
      [
        ["basic", { realm: "r1" }],
        ["bearer", { realm: "https://t/token", service: "s" }],
      ],
    );
  });

  it("accepts challenges spread over several header lines", () => {
    const cs = parseWwwAuthenticate(['Basic realm="a"', 'Bearer realm="https://b/token"']);
    assert.deepEqual(
      cs.map((c) => c.scheme),
      ["basic", "bearer"],
    );
  });

  it("lower-cases scheme and parameter names but not values, and unescapes quoted pairs", () => {
    const [c] = parseWwwAuthenticate('BEARER Realm="https://A/Token",Service="Reg \\"X\\""');
    assert.deepEqual(c, { scheme: "bearer", params: { realm: "https://A/Token", service: 'Reg "X"' } });
  });

  it("accepts unquoted token values and spaces around the equals sign", () => {
    const [c] = parseWwwAuthenticate("Bearer realm = https://t/token , service=reg");
    assert.deepEqual(c!.params, { realm: "https://t/token", service: "reg" });
  });

  it("returns no challenges for a missing or empty header", () => {
    assert.deepEqual(parseWwwAuthenticate(undefined), []);
    assert.deepEqual(parseWwwAuthenticate(""), []);
  });
});

describe("mergeScopes", () => {
  it("unions the actions of one repository into a single scope", () => {
    assert.deepEqual(mergeScopes(["repository:a:pull,push"], ["repository:a:pull"]), [
      "repository:a:pull,push",
    ]);
    assert.deepEqual(mergeScopes(["repository:a:pull"], ["repository:a:push"]), ["repository:a:pull,push"]);
  });

  it("keeps scopes of different repositories apart, in first-seen order", () => {
    assert.deepEqual(
      mergeScopes(["repository:b:pull,push", "repository:a:pull"], ["", "repository:b:pull"]),
      ["repository:b:pull,push", "repository:a:pull"],
    );
  });
});
