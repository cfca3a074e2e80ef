import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  hostResolvConf,
  hostsFileContent,
  resolvConfContent,
} from "../../../src/worker/oci/network-files.js";

describe("container network files", () => {
  it("writes localhost with the hostname, IPv6 localhost, then extra hosts", () => {
    assert.equal(
      hostsFileContent("box", [
        { host: "db", ip: "10.0.0.2" },
        { host: "v6", ip: "fd00::1" },
      ]),
      "127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.2\tdb\nfd00::1\tv6\n",
    );
  });

  it("rejects an extra host with an invalid IP address", () => {
    assert.throws(
      () => hostsFileContent("box", [{ host: "db", ip: "10.0.0" }]),
      /invalid IP address "10.0.0" for extra host db/,
    );
  });

  const host =
    "# generated\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 10.1.1.1\nsearch corp.example\noptions ndots:2\n";

  it("drops loopback nameservers for sandbox and none networks", () => {
    for (const net of ["sandbox", "none"] as const) {
      assert.equal(
        resolvConfContent(host, net),
        "# generated\nnameserver 10.1.1.1\nsearch corp.example\noptions ndots:2\n",
      );
    }
  });

  it("keeps the host's resolv.conf as it is for the host network", () => {
    assert.equal(resolvConfContent(host, "host"), host);
  });

  it("adds no nameserver when only loopback ones existed", () => {
    assert.doesNotMatch(resolvConfContent("nameserver 127.0.0.1\n", "sandbox"), /nameserver/);
  });

  describe("choosing the host file", () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(path.join(tmpdir(), "kiln-resolv-"));
    });
    afterEach(() => rm(dir, { recursive: true, force: true }));

    it("uses systemd-resolved's upstream list when the stub resolver is the only nameserver", async () => {
      const files = { main: path.join(dir, "main"), systemdResolved: path.join(dir, "upstream") };
      await writeFile(files.main, "nameserver 127.0.0.53\n");
      await writeFile(files.systemdResolved, "nameserver 192.0.2.53\n");
      assert.equal(await hostResolvConf("sandbox", files), "nameserver 192.0.2.53\n");
      assert.equal(await hostResolvConf("host", files), "nameserver 127.0.0.53\n");
    });

    it("reads an empty resolv.conf when the host has none", async () => {
      const files = { main: path.join(dir, "missing"), systemdResolved: path.join(dir, "missing2") };
      assert.equal(await hostResolvConf("sandbox", files), "");
    });
  });
});
