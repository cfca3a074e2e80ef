import assert from "node:assert/strict";
import { formatEngineAddress, parseEngineAddress } from "../../../src/server/engine-address.js";

describe("engine addresses", () => {
  it("parses a unix socket URL into its absolute path", () => {
    assert.deepEqual(parseEngineAddress("unix:///run/kiln/kilnd.sock"), {
      kind: "unix",
      path: "/run/kiln/kilnd.sock",
    });
  });

  it("parses tcp host and port, IPv6 without brackets", () => {
    assert.deepEqual(parseEngineAddress("tcp://127.0.0.1:1234"), {
      kind: "tcp",
      host: "127.0.0.1",
      port: 1234,
    });
    assert.deepEqual(parseEngineAddress("tcp://[::1]:99"), { kind: "tcp", host: "::1", port: 99 });
  });

  it("formats what it parses back to the same text", () => {
    for (const a of ["unix:///tmp/k.sock", "tcp://127.0.0.1:1234", "tcp://[::1]:99"]) {
      assert.equal(formatEngineAddress(parseEngineAddress(a)), a);
    }
  });

  it("rejects other schemes and a tcp address without a port, saying what to write", () => {
    assert.throws(
      () => parseEngineAddress("http://x:1"),
      /use unix:\/\/\/path\/to\/socket or tcp:\/\/host:port/,
    );
    assert.throws(() => parseEngineAddress("tcp://127.0.0.1"), /give a host and port/);
  });
});
