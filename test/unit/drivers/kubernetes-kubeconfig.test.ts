import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { KubeconfigError, resolveKubeTarget, runExecPlugin } from "../../../drivers/kubernetes/kubeconfig.js";

describe("kubeconfig resolution", () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "kiln-kubeconfig-"));
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function write(name: string, doc: unknown): string {
    const path = join(dir, name);
    writeFileSync(path, stringify(doc));
    return path;
  }

  const cluster = (name: string, server: string, extra: Record<string, unknown> = {}) => ({
    name,
    cluster: { server, ...extra },
  });
  const context = (name: string, clusterName: string, user: string, namespace?: string) => ({
    name,
    context: { cluster: clusterName, user, ...(namespace ? { namespace } : {}) },
  });

  it("uses the current context's server and namespace", () => {
    const path = write("config", {
      clusters: [cluster("prod", "https://prod.example:6443")],
      users: [{ name: "me", user: { token: "secret" } }],
      contexts: [context("prod", "prod", "me", "builds")],
      "current-context": "prod",
    });
    const t = resolveKubeTarget({ KUBECONFIG: path });
    assert.equal(t.server.href, "https://prod.example:6443/");
    assert.equal(t.namespace, "builds");
    assert.deepEqual(t.credentials, { kind: "token", token: "secret" });
  });

  it("defaults the namespace to `default` when the context names none", () => {
    const path = write("config", {
      clusters: [cluster("c", "https://c.example")],
      users: [{ name: "u", user: {} }],
      contexts: [context("c", "c", "u")],
      "current-context": "c",
    });
    assert.equal(resolveKubeTarget({ KUBECONFIG: path }).namespace, "default");
  });

  it("uses a named context over the current one", () => {
    const path = write("config", {
      clusters: [cluster("a", "https://a.example"), cluster("b", "https://b.example")],
      users: [{ name: "u", user: {} }],
      contexts: [context("a", "a", "u"), context("b", "b", "u")],
      "current-context": "a",
    });
    assert.equal(resolveKubeTarget({ KUBECONFIG: path }, "b").server.host, "b.example");
  });

  it("merges the KUBECONFIG files as kubectl does: the first to define a name or current-context wins", () => {
    const first = write("first", {
      clusters: [cluster("shared", "https://first.example")],
      contexts: [context("ctx", "shared", "u")],
      "current-context": "ctx",
    });
    const second = write("second", {
      clusters: [cluster("shared", "https://second.example")],
      users: [{ name: "u", user: { username: "admin", password: "pw" } }],
      contexts: [context("other", "shared", "u")],
      "current-context": "other",
    });
    const t = resolveKubeTarget({ KUBECONFIG: `${first}:${second}` });
    assert.equal(t.server.host, "first.example");
    assert.deepEqual(t.credentials, { kind: "basic", username: "admin", password: "pw" });
  });

  it("reads ~/.kube/config when KUBECONFIG is not set", () => {
    mkdirSync(join(dir, ".kube"));
    write(".kube/config", {
      clusters: [cluster("home", "https://home.example")],
      users: [{ name: "u", user: {} }],
      contexts: [context("home", "home", "u")],
      "current-context": "home",
    });
    assert.equal(resolveKubeTarget({ HOME: dir }).server.host, "home.example");
  });

  it("reads certificate files relative to the kubeconfig's directory and inline data as base64", () => {
    writeFileSync(join(dir, "ca.crt"), "CA PEM");
    const path = write("config", {
      clusters: [
        cluster("c", "https://c.example", { "certificate-authority": "ca.crt", "tls-server-name": "api" }),
      ],
      users: [
        {
          name: "u",
          user: {
            "client-certificate-data": Buffer.from("CERT PEM").toString("base64"),
            "client-key-data": Buffer.from("KEY PEM").toString("base64"),
          },
        },
      ],
      contexts: [context("c", "c", "u")],
      "current-context": "c",
    });
    const t = resolveKubeTarget({ KUBECONFIG: path });
    assert.equal(t.tls.ca?.toString(), "CA PEM");
    assert.equal(t.tls.cert?.toString(), "CERT PEM");
    assert.equal(t.tls.key?.toString(), "KEY PEM");
    assert.equal(t.tls.servername, "api");
    assert.equal(t.tls.insecure, false);
  });

  it("tells the user how to get a kubeconfig when there is none", () => {
    assert.throws(
      () => resolveKubeTarget({ KUBECONFIG: join(dir, "missing") }),
      (err: Error) =>
        err instanceof KubeconfigError && /no kubeconfig found .*set KUBECONFIG/.test(err.message),
    );
  });

  it("names the kubeconfig when the context does not exist", () => {
    const path = write("config", { clusters: [], contexts: [], "current-context": "gone" });
    assert.throws(
      () => resolveKubeTarget({ KUBECONFIG: path }),
      (err: Error) => err.message === `context "gone" is not in ${path}`,
    );
  });

  it("gets a token from an exec credential plugin, which sees KUBERNETES_EXEC_INFO and its env", async () => {
    const plugin = join(dir, "plugin.sh");
    writeFileSync(
      plugin,
      '#!/bin/sh\necho "{\\"apiVersion\\":\\"client.authentication.k8s.io/v1\\",\\"kind\\":\\"ExecCredential\\",\\"status\\":{\\"token\\":\\"$PREFIX-$(echo $KUBERNETES_EXEC_INFO | grep -c ExecCredential)\\"}}"\n',
    );
    chmodSync(plugin, 0o755);
    const path = write("config", {
      clusters: [cluster("c", "https://c.example")],
      users: [
        {
          name: "u",
          user: {
            exec: {
              command: "./plugin.sh",
              env: [{ name: "PREFIX", value: "tok" }],
              apiVersion: "client.authentication.k8s.io/v1",
            },
          },
        },
      ],
      contexts: [context("c", "c", "u")],
      "current-context": "c",
    });
    const t = resolveKubeTarget({ KUBECONFIG: path });
    assert.equal(t.credentials.kind, "exec");
    if (t.credentials.kind !== "exec") return;
    const cred = await runExecPlugin(t.credentials.plugin, t.credentials.baseDir, { PATH: process.env.PATH });
    assert.equal(cred.token, "tok-1");
  });
});
