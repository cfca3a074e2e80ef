import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fetchHttpToDir, resolveHttpKey } from "../../src/source/http-source.js";
import { HttpSourceCache } from "../../src/source/http-source-cache.js";
import { HttpFileServer } from "../support/http-file-server.js";

const sha256 = (s: string) => `sha256:${createHash("sha256").update(s).digest("hex")}`;

describe("http source against a real HTTP server", () => {
  let server: HttpFileServer;
  let work: string;
  let cache: HttpSourceCache;
  let n = 0;
  const dest = () => join(work, `out-${n++}`);

  beforeEach(async () => {
    server = await HttpFileServer.start();
    work = await mkdtemp(join(tmpdir(), "kiln-http-src-"));
    cache = new HttpSourceCache(join(work, "cache"));
  });
  afterEach(async () => {
    await server.stop();
    await rm(work, { recursive: true, force: true });
  });

  it("writes the file named after the URL's last segment, mode 0600, mtime from Last-Modified", async () => {
    const modified = new Date("2021-03-04T05:06:07Z");
    server.setFile("/dl/tool.tar.gz", "payload", { lastModified: modified });
    const out = dest();
    await fetchHttpToDir(server.url("/dl/tool.tar.gz"), {}, out, cache);
    assert.deepEqual(await readdir(out), ["tool.tar.gz"]);
    const st = await stat(join(out, "tool.tar.gz"));
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.mtime.getTime(), modified.getTime());
    assert.equal(await readFile(join(out, "tool.tar.gz"), "utf8"), "payload");
  });

  it("names the file by http.filename and applies http.perm, uid and gid", async () => {
    server.setFile("/a", "x");
    const out = dest();
    await fetchHttpToDir(
      server.url("/a"),
      { "http.filename": "renamed.bin", "http.perm": "0755", "http.uid": "1234", "http.gid": "5678" },
      out,
      cache,
    );
    const st = await stat(join(out, "renamed.bin"));
    assert.equal(st.mode & 0o777, 0o755);
    assert.equal(st.uid, 1234);
    assert.equal(st.gid, 5678);
  });

  it("uses the server's Content-Disposition name when the attrs give none", async () => {
    server.setFile("/download", "x", { contentDisposition: 'attachment; filename="report.csv"' });
    const out = dest();
    await fetchHttpToDir(server.url("/download"), {}, out, cache);
    assert.deepEqual(await readdir(out), ["report.csv"]);
  });

  it("sets the mtime to the Unix epoch when the server sends no Last-Modified", async () => {
    server.setFile("/f", "x");
    const out = dest();
    await fetchHttpToDir(server.url("/f"), {}, out, cache);
    assert.equal((await stat(join(out, "f"))).mtime.getTime(), 0);
  });

  it("accepts a download whose digest matches http.checksum", async () => {
    server.setFile("/f", "checked");
    const out = dest();
    await fetchHttpToDir(server.url("/f"), { "http.checksum": sha256("checked") }, out, cache);
    assert.equal(await readFile(join(out, "f"), "utf8"), "checked");
  });

  it("rejects a checksum mismatch with an error naming the URL, expected and actual digests", async () => {
    server.setFile("/f", "actual");
    const expected = sha256("expected");
    const out = dest();
    await assert.rejects(
      fetchHttpToDir(server.url("/f"), { "http.checksum": expected }, out, cache),
      (e: Error) => {
        assert.match(e.message, new RegExp(server.url("/f").replaceAll(".", "\\.")));
        assert.ok(e.message.includes(expected), e.message);
        assert.ok(e.message.includes(sha256("actual")), e.message);
        return true;
      },
    );
    await assert.rejects(stat(join(out, "f")), "no file is written");
  });

  it("keys a pinned checksum without asking the server", async () => {
    const key = await resolveHttpKey(server.url("/f"), { "http.checksum": sha256("z") }, cache);
    assert.equal(key, sha256("z"));
    assert.equal(server.requests.length, 0);
  });

  it("resolves the key a second time through the remembered ETag without downloading again", async () => {
    server.setFile("/f", "stable");
    const first = await resolveHttpKey(server.url("/f"), {}, cache);
    assert.equal(server.downloads("/f"), 1);
    const second = await resolveHttpKey(server.url("/f"), {}, new HttpSourceCache(cache.dir));
    assert.equal(second, first);
    assert.equal(server.downloads("/f"), 1, "the body was not downloaded again");
    const head = server.requests.find((r) => r.method === "HEAD");
    assert.ok(head, "a HEAD request asked about the remembered version");
    assert.match(String(head.headers["if-none-match"]), /^"[0-9a-f]{16}"$/);
  });

  it("falls back to a conditional GET answered 304 when the server refuses HEAD", async () => {
    server.setFile("/f", "stable");
    const first = await resolveHttpKey(server.url("/f"), {}, cache);
    server.refuseHead = true;
    const second = await resolveHttpKey(server.url("/f"), {}, cache);
    assert.equal(second, first);
    assert.equal(server.downloads("/f"), 1);
    assert.ok(server.requests.some((r) => r.method === "GET" && r.status === 304));
  });

  it("uses If-Modified-Since when the server sends Last-Modified but no ETag", async () => {
    server.setFile("/f", "dated", { etag: null, lastModified: new Date("2020-01-01T00:00:00Z") });
    const first = await resolveHttpKey(server.url("/f"), {}, cache);
    const second = await resolveHttpKey(server.url("/f"), {}, cache);
    assert.equal(second, first);
    assert.equal(server.downloads("/f"), 1);
    assert.ok(
      server.requests.some((r) => r.headers["if-modified-since"] === "Wed, 01 Jan 2020 00:00:00 GMT"),
    );
  });

  it("gives changed content a different key", async () => {
    server.setFile("/f", "one");
    const first = await resolveHttpKey(server.url("/f"), {}, cache);
    server.setFile("/f", "two");
    const second = await resolveHttpKey(server.url("/f"), {}, cache);
    assert.notEqual(second, first);
    assert.equal(server.downloads("/f"), 2);
  });

  it("writes the content the key was resolved from without downloading it again", async () => {
    server.setFile("/f", "resolved");
    await resolveHttpKey(server.url("/f"), {}, cache);
    const out = dest();
    await fetchHttpToDir(server.url("/f"), {}, out, cache);
    assert.equal(await readFile(join(out, "f"), "utf8"), "resolved");
    assert.equal(server.requests.length, 1);
  });

  it("fails on 404 with an error naming the URL and the status", async () => {
    const url = server.url("/missing.txt");
    await assert.rejects(resolveHttpKey(url, {}, cache), (e: Error) => {
      assert.ok(e.message.includes(url), e.message);
      assert.match(e.message, /404/);
      return true;
    });
  });

  it("fails on an error status reached through a redirect, naming both URLs", async () => {
    server.redirect("/old", server.url("/gone"));
    await assert.rejects(fetchHttpToDir(server.url("/old"), {}, dest(), cache), (e: Error) => {
      assert.ok(e.message.includes(server.url("/old")), e.message);
      assert.ok(e.message.includes(server.url("/gone")), e.message);
      assert.match(e.message, /404/);
      return true;
    });
  });

  it("follows redirects and names the file after the URL asked for", async () => {
    server.setFile("/real/target.bin", "moved");
    server.redirect("/latest.bin", "/real/target.bin", 301);
    const out = dest();
    await fetchHttpToDir(server.url("/latest.bin"), {}, out, cache);
    assert.equal(await readFile(join(out, "latest.bin"), "utf8"), "moved");
  });

  it("sends the Authorization header from the secret named by http.authheadersecret", async () => {
    server.setFile("/private", "secret stuff");
    server.requiredAuthorization = "Basic dXNlcjpwdw==";
    const secrets: Record<string, string> = { MY_AUTH: "Basic dXNlcjpwdw==" };
    const getSecret = async (id: string) => (secrets[id] ? Buffer.from(secrets[id]) : undefined);
    const out = dest();
    await fetchHttpToDir(
      server.url("/private"),
      { "http.authheadersecret": "MY_AUTH" },
      out,
      cache,
      getSecret,
    );
    assert.equal(await readFile(join(out, "private"), "utf8"), "secret stuff");
    await assert.rejects(
      fetchHttpToDir(server.url("/private"), {}, dest(), new HttpSourceCache(join(work, "c2"))),
      /401/,
    );
  });

  it("sends a bearer token from the per-host HTTP_AUTH_TOKEN_ secret", async () => {
    server.setFile("/private", "tok");
    server.requiredAuthorization = "Bearer t0ken";
    const getSecret = async (id: string) =>
      id === "HTTP_AUTH_TOKEN_127.0.0.1" ? Buffer.from("t0ken") : undefined;
    const out = dest();
    await fetchHttpToDir(server.url("/private"), {}, out, cache, getSecret);
    assert.equal(await readFile(join(out, "private"), "utf8"), "tok");
  });

  it("fails naming the secret when http.authheadersecret names one the build lacks", async () => {
    server.setFile("/private", "x");
    await assert.rejects(
      resolveHttpKey(
        server.url("/private"),
        { "http.authheadersecret": "NOPE" },
        cache,
        async () => undefined,
      ),
      /NOPE/,
    );
  });
});
