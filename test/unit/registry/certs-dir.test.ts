import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { certsDirNames, loadRegistryTlsFiles } from "../../../src/registry/certs-dir.js";

describe("certs.d discovery", () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "kiln-certsd-"));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("reads *.crt files of the host:port directory as CAs, in name order", async () => {
    const dir = join(root, "reg.example:5000");
    await mkdir(dir);
    await writeFile(join(dir, "b.crt"), "CA-B");
    await writeFile(join(dir, "a.crt"), "CA-A");
    await writeFile(join(dir, "README"), "ignored");
    const files = await loadRegistryTlsFiles([root], "reg.example:5000");
    assert.deepEqual(files.caFiles, [join(dir, "a.crt"), join(dir, "b.crt")]);
    assert.deepEqual(
      files.cas.map((b) => b.toString()),
      ["CA-A", "CA-B"],
    );
    assert.deepEqual(files.dirs, [dir]);
  });

  it("pairs client.cert with client.key", async () => {
    const dir = join(root, "reg.example");
    await mkdir(dir);
    await writeFile(join(dir, "client.cert"), "CERT");
    await writeFile(join(dir, "client.key"), "KEY");
    const files = await loadRegistryTlsFiles([root], "reg.example");
    assert.equal(files.clientPairs.length, 1);
    assert.equal(files.clientPairs[0]!.cert.toString(), "CERT");
    assert.equal(files.clientPairs[0]!.key.toString(), "KEY");
  });

  it("rejects a client certificate without its key, naming the missing file", async () => {
    const dir = join(root, "reg.example");
    await mkdir(dir);
    await writeFile(join(dir, "client.cert"), "CERT");
    await assert.rejects(loadRegistryTlsFiles([root], "reg.example"), /client\.key/);
  });

  it("rejects a client key without its certificate", async () => {
    const dir = join(root, "reg.example");
    await mkdir(dir);
    await writeFile(join(dir, "client.key"), "KEY");
    await assert.rejects(loadRegistryTlsFiles([root], "reg.example"), /client\.cert/);
  });

  it("does not use a directory of the same host on another port", async () => {
    await mkdir(join(root, "reg.example:5000"));
    await writeFile(join(root, "reg.example:5000", "ca.crt"), "CA");
    const files = await loadRegistryTlsFiles([root], "reg.example:5001");
    assert.deepEqual(files.cas, []);
    assert.deepEqual(files.dirs, []);
  });

  it("also accepts host_port directory names", async () => {
    assert.deepEqual(certsDirNames("reg.example:5000"), ["reg.example:5000", "reg.example_5000"]);
    await mkdir(join(root, "reg.example_5000"));
    await writeFile(join(root, "reg.example_5000", "ca.crt"), "CA");
    const files = await loadRegistryTlsFiles([root], "reg.example:5000");
    assert.deepEqual(
      files.cas.map((b) => b.toString()),
      ["CA"],
    );
  });

  it("finds nothing, without error, when the root does not exist", async () => {
    const files = await loadRegistryTlsFiles([join(root, "missing")], "reg.example");
    assert.deepEqual(files, { dirs: [], caFiles: [], cas: [], clientPairs: [] });
  });
});
