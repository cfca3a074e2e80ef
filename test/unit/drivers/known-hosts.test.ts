import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkHostKey, knownHostsName } from "../../../drivers/docker-api/known-hosts.js";

// Two real ed25519 public keys (blob = the base64 field of a .pub line).
const KEY_A = "AAAAC3NzaC1lZDI1NTE5AAAAIJVVEaYg3zvMjn3kg2GGrnjRKcnl8BCPYK+nTyHX1XAK";
const KEY_B = "AAAAC3NzaC1lZDI1NTE5AAAAIHx9JI5b1mFQ8G2Cc0Ztj4oQ4v4x0o3yHqHkP1bq2c6l";
const blob = (b64: string) => Buffer.from(b64, "base64");

describe("known_hosts checks for ssh:// Docker hosts", () => {
  it("names hosts on port 22 bare and others as [host]:port", () => {
    assert.equal(knownHostsName("example.com", 22), "example.com");
    assert.equal(knownHostsName("127.0.0.1", 2222), "[127.0.0.1]:2222");
  });

  it("knows a host listed with its key, and calls a different key for it changed", () => {
    const text = `# comment\nexample.com,10.0.0.1 ssh-ed25519 ${KEY_A}\n`;
    assert.equal(checkHostKey(text, "10.0.0.1", 22, blob(KEY_A)), "known");
    assert.equal(checkHostKey(text, "example.com", 22, blob(KEY_B)), "changed");
  });

  it("keeps ports apart: an entry for port 22 says nothing about another port", () => {
    const text = `example.com ssh-ed25519 ${KEY_A}\n`;
    assert.equal(checkHostKey(text, "example.com", 2222, blob(KEY_A)), "unknown");
  });

  it("matches the hashed names ssh-keygen -H writes", () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-known-hosts-"));
    try {
      const file = join(dir, "known_hosts");
      writeFileSync(file, `[127.0.0.1]:2222 ssh-ed25519 ${KEY_A}\n`);
      execFileSync("ssh-keygen", ["-q", "-H", "-f", file], { stdio: "ignore" });
      const hashed = readFileSync(file, "utf8");
      assert.match(hashed, /^\|1\|/);
      assert.equal(checkHostKey(hashed, "127.0.0.1", 2222, blob(KEY_A)), "known");
      assert.equal(checkHostKey(hashed, "127.0.0.2", 2222, blob(KEY_A)), "unknown");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("honours wildcards and negations in host patterns", () => {
    const text = `*.example.com,!bad.example.com ssh-ed25519 ${KEY_A}\n`;
    assert.equal(checkHostKey(text, "build.example.com", 22, blob(KEY_A)), "known");
    assert.equal(checkHostKey(text, "bad.example.com", 22, blob(KEY_A)), "unknown");
  });

  it("refuses a key marked @revoked even when another line lists it", () => {
    const text = `example.com ssh-ed25519 ${KEY_A}\n@revoked * ssh-ed25519 ${KEY_A}\n`;
    assert.equal(checkHostKey(text, "example.com", 22, blob(KEY_A)), "revoked");
  });
});
