// The kubernetes driver's failures as the user sees them, against the Kubernetes API simulator on
// loopback (none of these reach a pod, so no container is started).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Driver } from "../../../drivers/driver.js";
import { KubeApiClient, KubeApiError } from "../../../drivers/kubernetes/kube-client.js";
import { resolveKubeTarget } from "../../../drivers/kubernetes/kubeconfig.js";
import { driverFactory } from "../../../drivers/registry.js";
import { KubernetesApiSimulator } from "../../support/kubernetes-api-simulator.js";

describe("kubernetes driver errors (Kubernetes API simulator)", () => {
  let sim: KubernetesApiSimulator;
  let dir: string;
  let kubeconfig: string;

  before(async () => {
    sim = await KubernetesApiSimulator.start({ dockerHost: "unix:///var/run/docker.sock" });
    dir = mkdtempSync(join(tmpdir(), "kiln-k8s-errors-"));
    kubeconfig = join(dir, "kubeconfig");
    writeFileSync(kubeconfig, sim.kubeconfig());
  });

  after(async () => {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function driver(driverOpts: Record<string, string>, file = kubeconfig): Driver {
    return driverFactory("kubernetes").create({
      name: "kube0",
      endpoint: "",
      driverOpts,
      platforms: [],
      flags: [],
      env: { KUBECONFIG: file },
    });
  }

  it("reports a builder whose Deployment does not exist as inactive", async () => {
    assert.deepEqual(await driver({}).info(), { status: "inactive" });
  });

  it("reports an unreachable API server as inactive, naming the server and the kubeconfig context", async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const closed = join(dir, "closed");
    writeFileSync(closed, sim.kubeconfig().replace(sim.url, `http://127.0.0.1:${port}`));
    const info = await driver({}, closed).info();
    assert.equal(info.status, "inactive");
    assert.match(
      info.detail ?? "",
      new RegExp(
        `cannot reach the Kubernetes API server at http://127.0.0.1:${port} \\(context "simulator" of ${closed}\\): .*ECONNREFUSED`,
      ),
    );
  });

  it("says the credentials were refused when the API server answers 401", async () => {
    const wrong = join(dir, "wrong-token");
    writeFileSync(wrong, sim.kubeconfig().replace(sim.token, "not-the-token"));
    await assert.rejects(
      new KubeApiClient(resolveKubeTarget({ KUBECONFIG: wrong })).request(
        "GET",
        "/api/v1/namespaces/default/pods",
      ),
      (err: Error) =>
        err instanceof KubeApiError &&
        err.statusCode === 401 &&
        /Unauthorized \(the credentials of context "simulator" of .*wrong-token were refused\)/.test(
          err.message,
        ),
    );
  });

  it("fails bootstrap in a namespace that does not exist with the API server's message", async () => {
    await assert.rejects(
      driver({ namespace: "absent", image: "kiln/engine:any" }).bootstrap(),
      /Kubernetes API POST \/apis\/apps\/v1\/namespaces\/absent\/deployments: namespaces "absent" not found/,
    );
  });

  it("fails a dial when the builder has no running pod, saying how to boot it", async () => {
    await assert.rejects(
      driver({}).dial(),
      /no running engine pod in deployment default\/kube0: boot the builder/,
    );
  });

  it("fails an exec into a pod that does not exist with the API server's message", async () => {
    const client = new KubeApiClient(resolveKubeTarget({ KUBECONFIG: kubeconfig }));
    await assert.rejects(
      client.exec("default", "ghost", "kilnd", ["kilnd", "dial-stdio"]),
      (err: Error) =>
        err instanceof KubeApiError && err.statusCode === 404 && /pods "ghost" not found/.test(err.message),
    );
  });
});
