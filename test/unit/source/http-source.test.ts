import assert from "node:assert/strict";
import {
  contentDispositionFilename,
  httpSourceFileName,
  parseHttpSource,
} from "../../../src/source/http-source.js";

describe("http source attrs and file names", () => {
  it("reads http.perm as Go's base-0 integers: leading 0 octal, 0x hex, plain decimal", () => {
    assert.equal(parseHttpSource("https://h/f", { "http.perm": "0755" }).perm, 0o755);
    assert.equal(parseHttpSource("https://h/f", { "http.perm": "0x1ed" }).perm, 0o755);
    assert.equal(parseHttpSource("https://h/f", { "http.perm": "493" }).perm, 0o755);
  });

  it("rejects a perm that is not an integer, naming the attr", () => {
    assert.throws(() => parseHttpSource("https://h/f", { "http.perm": "rwx" }), /http\.perm/);
  });

  it("rejects a checksum that is not sha256:<64 hex>, naming the URL", () => {
    assert.throws(() => parseHttpSource("https://h/f", { "http.checksum": "md5:abc" }), /https:\/\/h\/f/);
  });

  it("keeps only the last path element of a given file name", () => {
    const spec = parseHttpSource("https://h/f", { "http.filename": "../../etc/passwd" });
    assert.equal(httpSourceFileName(spec), "passwd");
  });

  it("falls back to BuildKit's name `download` for a URL without a path", () => {
    assert.equal(httpSourceFileName(parseHttpSource("https://h/", {})), "download");
  });

  it("takes the URL's decoded last segment, ignoring the query", () => {
    assert.equal(httpSourceFileName(parseHttpSource("https://h/a/my%20file.txt?x=1", {})), "my file.txt");
  });

  it("prefers an http.filename attr over the server's Content-Disposition", () => {
    const spec = parseHttpSource("https://h/f", { "http.filename": "mine" });
    assert.equal(httpSourceFileName(spec, "theirs"), "mine");
  });

  it("parses quoted, token and RFC 5987 Content-Disposition file names", () => {
    assert.equal(contentDispositionFilename('attachment; filename="a \\"b\\".txt"'), 'a "b".txt');
    assert.equal(contentDispositionFilename("attachment; filename=plain.bin"), "plain.bin");
    assert.equal(contentDispositionFilename("attachment; filename*=UTF-8''na%C3%AFve.txt"), "naïve.txt");
    assert.equal(contentDispositionFilename("inline"), undefined);
  });
});
