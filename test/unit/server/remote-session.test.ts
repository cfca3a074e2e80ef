import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BuildServerMessage, WireFileStat } from "../../../src/server/engine-proto.js";
import { RemoteSession } from "../../../src/session/grpc-engine-session.js";
import { SyncProtocolError, SyncReceiver } from "../../../src/session/grpc-sync-receiver.js";

function stat(path: string, type: "file" | "dir" | "symlink", link?: string): WireFileStat {
  return {
    path,
    type,
    size: type === "file" ? 1 : 0,
    mtimeMs: 1000,
    mode: 0o644,
    uid: 0,
    gid: 0,
    ino: 1,
    ...(link ? { link } : {}),
  };
}

describe("the engine side of a remote session", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-remote-session-"));
  });
  // The receiver may still be removing its staging files when it has already refused the sync.
  afterEach(() => rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 }));

  const channel = { requestFiles: () => {}, holdInput: () => () => {} };

  for (const bad of ["../escape", "/etc/passwd", "a/../../b", "a//b", "."]) {
    it(`refuses a synced path that could leave the copy: ${JSON.stringify(bad)}`, async () => {
      const receiver = new SyncReceiver(join(dir, "copy"), channel);
      receiver.onEntries({ call: 1, entries: [stat(bad, "file")], done: true });
      await assert.rejects(receiver.result, SyncProtocolError);
    });
  }

  it("refuses a synced file below a synced symlink, which would write where the link points", async () => {
    const receiver = new SyncReceiver(join(dir, "copy"), channel);
    receiver.onEntries({
      call: 1,
      entries: [stat("a", "symlink", "/etc"), stat("a/passwd", "file")],
      done: true,
    });
    await assert.rejects(receiver.result, /below the symlink a/);
    assert.equal(existsSync(join(dir, "copy", "a")), false);
  });

  it("refuses content for an entry it did not ask for", async () => {
    const asked: number[][] = [];
    const receiver = new SyncReceiver(join(dir, "copy"), { ...channel, requestFiles: (i) => asked.push(i) });
    receiver.onEntries({ call: 1, entries: [stat("x", "file")], done: true });
    while (asked.length === 0) await new Promise((r) => setTimeout(r, 5));
    receiver.onData({ call: 1, index: 5, data: Buffer.from("x"), eof: true });
    await assert.rejects(receiver.result, /did not ask for/);
  });

  it("keeps no more than its window of export bytes ahead of the client's credit", async () => {
    const sent: BuildServerMessage[] = [];
    const session = new RemoteSession(
      { id: "s", sharedKeys: {}, sshIds: [] },
      { send: (m) => sent.push(m), holdInput: () => () => {} },
    );
    const opening = session.openExport({ output: 0, kind: "file" });
    const open = sent.find((m) => "exportOpen" in m);
    assert.ok(open && "exportOpen" in open);
    const stream = open.exportOpen.stream;
    session.handle({ reply: { call: stream, found: true } });
    const { stream: out, done } = await opening;
    const inFlight = () =>
      sent.reduce((n, m) => n + ("exportData" in m ? (m.exportData.data?.length ?? 0) : 0), 0);
    const total = 32 * 1024 * 1024;
    let writing = true;
    const writer = (async () => {
      for (let i = 0; i < total / 65536; i++) {
        if (!out.write(Buffer.alloc(65536))) await new Promise((r) => out.once("drain", r));
      }
      out.end();
      writing = false;
    })();
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(writing, "the writer waits for credit");
    const stalledAt = inFlight();
    assert.ok(stalledAt <= 9 * 1024 * 1024, `sent ${stalledAt} bytes without credit`);
    let credited = 0;
    while (writing || credited < inFlight()) {
      const now = inFlight();
      session.handle({ exportCredit: { stream, bytes: now - credited } });
      credited = now;
      await new Promise((r) => setImmediate(r));
    }
    await writer;
    assert.equal(inFlight(), total);
    assert.ok(sent.some((m) => "exportData" in m && m.exportData.eof));
    session.handle({ exportEnd: { stream } });
    await done;
  });

  it("fails a pending secret request when the build stream closes", async () => {
    const session = new RemoteSession(
      { id: "s", sharedKeys: {}, sshIds: [] },
      { send: () => {}, holdInput: () => () => {} },
    );
    const secret = session.getSecret("token");
    session.close(new Error("the client went away"));
    await assert.rejects(secret, /the client went away/);
  });
});
