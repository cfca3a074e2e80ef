import assert from "node:assert/strict";
import {
  isLoopbackHost,
  matchesInsecureList,
  registryApiHost,
  splitHostPort,
} from "../../../src/registry/hosts.js";

describe("registry hosts", () => {
  it("sends Docker Hub's API requests to registry-1.docker.io", () => {
    assert.equal(registryApiHost("docker.io"), "registry-1.docker.io");
    assert.equal(registryApiHost("index.docker.io"), "registry-1.docker.io");
    assert.equal(registryApiHost("127.0.0.1:5000"), "127.0.0.1:5000");
  });

  it("counts localhost, 127.0.0.0/8 and ::1 as loopback, with or without a port", () => {
    for (const h of ["localhost", "localhost:5000", "127.0.0.1:5000", "127.1.2.3", "[::1]:5000", "::1"])
      assert.equal(isLoopbackHost(h), true, h);
    for (const h of ["reg.example:5000", "10.0.0.1", "128.0.0.1", "[2001:db8::1]:443"])
      assert.equal(isLoopbackHost(h), false, h);
  });

  it("matches insecure entries by host:port, bare host and CIDR", () => {
    assert.equal(matchesInsecureList("reg.example:5000", ["reg.example:5000"]), true);
    assert.equal(matchesInsecureList("reg.example:5000", ["reg.example"]), true);
    assert.equal(matchesInsecureList("reg.example:5000", ["reg.example:5001"]), false);
    assert.equal(matchesInsecureList("10.1.2.3:5000", ["10.0.0.0/8"]), true);
    assert.equal(matchesInsecureList("11.1.2.3:5000", ["10.0.0.0/8"]), false);
    assert.equal(matchesInsecureList("reg.example", ["http://reg.example/"]), true);
  });

  it("splits host and port, including bracketed IPv6", () => {
    assert.deepEqual(splitHostPort("reg.example:5000"), { hostname: "reg.example", port: 5000 });
    assert.deepEqual(splitHostPort("[::1]:5000"), { hostname: "::1", port: 5000 });
    assert.deepEqual(splitHostPort("reg.example"), { hostname: "reg.example" });
  });
});
