// The kubernetes driver: the node's engine runs as kilnd in the pods of a Deployment named after
// the node (plus a ConfigMap `<node>-config` with the engine configuration, when there is one),
// in a cluster reached through the kubeconfig as kubectl resolves it; the node's endpoint, if
// any, names the kubeconfig context. The client reaches an engine by exec'ing `kilnd dial-stdio`
// in a running pod chosen by the `loadbalance` option. Unlike Buildx, whose `stop` leaves the
// pods running, stop scales the Deployment to zero; bootstrap scales it back up.
import type { Duplex } from "node:stream";
import { dialEngine } from "../../src/client/dial-engine.js";
import type { BuildEngine } from "../../src/engine/types.js";
import { dockerClient, resolveDockerEndpoint } from "../docker-api/docker-endpoint.js";
import { parseKilndVersion } from "../docker-container/driver.js";
import { ensureEngineImage } from "../docker-container/engine-image.js";
import {
  type Driver,
  type DriverFactory,
  type DriverFeatures,
  type DriverInfo,
  engineFeatures,
  type InitConfig,
  type RemoveOptions,
  validateDriverOptions,
} from "../driver.js";
import { isAlreadyExists, isNotFound, KubeApiClient, KubeApiError } from "./kube-client.js";
import { type ConfigMap, type Deployment, type Pod, type PodList, podReady } from "./kube-objects.js";
import { resolveKubeTarget } from "./kubeconfig.js";
import { configMapName, ENGINE_CONTAINER, engineObjects, podSelector } from "./manifest.js";
import { KUBERNETES_OPTIONS, type KubernetesSettings, kubernetesSettings } from "./options.js";
import { podChooser } from "./pod-chooser.js";

const POLL_MS = 500;
/** Dial attempts, and the step of their linear backoff. */
const DIAL_TRIES = 3;
const DIAL_STEP_MS = 300;

export const kubernetesFactory: DriverFactory = {
  name: "kubernetes",
  usage: () => "kubernetes: the engine runs in the pods of a Deployment in a Kubernetes cluster",
  // Chosen only by name: no endpoint says "a Kubernetes cluster".
  priority: () => 0,
  allowsInstances: true,
  options: KUBERNETES_OPTIONS,
  create(config: InitConfig): Driver {
    validateDriverOptions(this, config.driverOpts);
    return new KubernetesDriver(config, kubernetesSettings(config.driverOpts));
  },
};

function selectorQuery(node: string): string {
  return Object.entries(podSelector(node))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

/** Why a pod is not ready, as `kubectl get pods` would show it. */
function podProblem(pod: Pod): string {
  const state = pod.status.containerStatuses?.find((c) => c.name === ENGINE_CONTAINER)?.state;
  const why = state?.waiting ?? state?.terminated;
  const reason = why
    ? `${why.reason ?? "Waiting"}${why.message ? `: ${why.message}` : ""}`
    : pod.status.phase;
  return `${pod.metadata.name} ${reason}`;
}

export class KubernetesDriver implements Driver {
  readonly factory = kubernetesFactory;
  private clientCache?: KubeApiClient;

  constructor(
    readonly config: InitConfig,
    private readonly settings: KubernetesSettings,
  ) {}

  /** The kubeconfig is read on first use, so a builder can be listed without a cluster. */
  private client(): KubeApiClient {
    this.clientCache ??= new KubeApiClient(
      resolveKubeTarget(this.config.env, this.config.endpoint || undefined),
      this.config.env,
    );
    return this.clientCache;
  }

  get namespace(): string {
    return this.settings.namespace ?? this.client().target.namespace;
  }

  get deploymentName(): string {
    return this.config.name;
  }

  private get deploymentPath(): string {
    return `/apis/apps/v1/namespaces/${this.namespace}/deployments`;
  }

  private get configMapPath(): string {
    return `/api/v1/namespaces/${this.namespace}/configmaps`;
  }

  private get where(): string {
    return `deployment ${this.namespace}/${this.deploymentName}`;
  }

  private async deployment(): Promise<Deployment | undefined> {
    try {
      return await this.client().request<Deployment>("GET", `${this.deploymentPath}/${this.deploymentName}`);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** The node's pods; terminating ones only when `terminating` (they still hold containers). */
  private async pods(terminating = false): Promise<Pod[]> {
    const list = await this.client().request<PodList>("GET", `/api/v1/namespaces/${this.namespace}/pods`, {
      query: { labelSelector: selectorQuery(this.deploymentName) },
    });
    return terminating ? list.items : list.items.filter((p) => !p.metadata.deletionTimestamp);
  }

  private async scale(replicas: number): Promise<void> {
    await this.client().request("PATCH", `${this.deploymentPath}/${this.deploymentName}`, {
      body: { spec: { replicas } },
      contentType: "application/merge-patch+json",
    });
  }

  /** The image the pods run: the `image` option, else this Kiln's engine image on the local Docker daemon. */
  private async engineImage(log: (line: string) => void): Promise<{ image: string; local: boolean }> {
    if (this.settings.image) return { image: this.settings.image, local: false };
    let image: string;
    try {
      const docker = await dockerClient(resolveDockerEndpoint(undefined, this.config.env), this.config.env);
      image = await ensureEngineImage(docker, log);
    } catch (err) {
      throw new Error(
        `cannot build the engine image on the local Docker daemon (${(err as Error).message}): give --driver-opt image=<a Kiln engine image the cluster can pull>`,
      );
    }
    log(
      `the pods run ${image}, built on the local Docker daemon: the cluster's nodes must have it (give image= otherwise)`,
    );
    return { image, local: true };
  }

  async bootstrap(log: (line: string) => void = () => {}): Promise<void> {
    const existing = await this.deployment();
    if (!existing) {
      const { image, local } = await this.engineImage(log);
      const objects = engineObjects({
        name: this.deploymentName,
        namespace: this.namespace,
        image,
        localImage: local,
        flags: this.config.flags,
        configFile: this.config.configFile,
        platforms: this.config.platforms,
        settings: this.settings,
      });
      if (objects.configMap) await this.putConfigMap(objects.configMap);
      log(`creating ${this.where} with ${this.settings.replicas} replica(s)`);
      try {
        await this.client().request("POST", this.deploymentPath, { body: objects.deployment });
      } catch (err) {
        // Another client created it at the same moment: wait for its pods like for ours.
        if (!isAlreadyExists(err)) throw err;
      }
    } else if (existing.spec.replicas !== this.settings.replicas) {
      log(`scaling ${this.where} to ${this.settings.replicas} replica(s)`);
      await this.scale(this.settings.replicas);
    }
    await this.waitReady(log);
  }

  private async putConfigMap(configMap: ConfigMap): Promise<void> {
    try {
      await this.client().request("POST", this.configMapPath, { body: configMap });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      await this.client().request("PUT", `${this.configMapPath}/${configMap.metadata.name}`, {
        body: configMap,
      });
    }
  }

  /** Waits until every replica is ready, up to the `timeout` option. */
  private async waitReady(log: (line: string) => void): Promise<void> {
    const deadline = Date.now() + this.settings.timeoutMs;
    log(`waiting for the pods of ${this.where} to be ready`);
    for (;;) {
      const d = await this.deployment();
      if (!d) throw new Error(`${this.where} was deleted while waiting for its pods`);
      const ready = d.status?.readyReplicas ?? 0;
      if (ready >= d.spec.replicas) return;
      if (Date.now() >= deadline) {
        const pods = await this.pods().catch(() => []);
        const problems = pods.filter((p) => !podReady(p)).map(podProblem);
        throw new Error(
          `${this.where}: ${ready} of ${d.spec.replicas} pods ready after ${this.settings.timeoutMs / 1000}s` +
            `${problems.length ? ` (${problems.join("; ")})` : ""}; ` +
            `see kubectl -n ${this.namespace} describe pods -l ${selectorQuery(this.deploymentName)}`,
        );
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  async info(): Promise<DriverInfo> {
    let d: Deployment | undefined;
    try {
      d = await this.deployment();
    } catch (err) {
      return { status: "inactive", detail: (err as Error).message };
    }
    if (!d) return { status: "inactive" };
    if (d.spec.replicas === 0) return { status: (d.status?.replicas ?? 0) > 0 ? "stopping" : "stopped" };
    return { status: (d.status?.readyReplicas ?? 0) > 0 ? "running" : "starting" };
  }

  /** The running pod that serves this client. */
  private async choosePod(): Promise<string> {
    const running = (await this.pods()).filter((p) => p.status.phase === "Running" && podReady(p));
    if (running.length === 0)
      throw new Error(
        `no running engine pod in ${this.where}: boot the builder (kiln create --bootstrap, or any build) or check kubectl -n ${this.namespace} get pods`,
      );
    // Buildx keys sticky choices by the client's directory: builds of one project share a pod's cache.
    const choose = podChooser(this.settings.loadBalance, process.cwd());
    return choose(running.map((p) => p.metadata.name).sort());
  }

  async version(): Promise<string> {
    const pod = await this.choosePod();
    const r = await this.client().execCollect(this.namespace, pod, ENGINE_CONTAINER, ["kilnd", "version"]);
    if (r.exitCode !== 0)
      throw new Error(
        `kilnd version in pod ${this.namespace}/${pod}: ${r.stderr.trim() || r.message || `exit ${r.exitCode}`}`,
      );
    return parseKilndVersion(r.stdout);
  }

  async stop(_force: boolean): Promise<void> {
    const d = await this.deployment();
    if (!d) return;
    if (d.spec.replicas !== 0) await this.scale(0);
    // Returns once the pods are gone, so that `ls` right after shows the node stopped.
    const deadline = Date.now() + this.settings.timeoutMs;
    while ((await this.pods(true)).length > 0) {
      if (Date.now() >= deadline)
        throw new Error(
          `${this.where} was scaled to 0 but its pods are still terminating; check kubectl -n ${this.namespace} get pods`,
        );
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  async rm(opts: RemoveOptions): Promise<void> {
    // The engine's state lives in the pods' emptyDir volumes: it goes with them, keepState or not.
    if (opts.keepDaemon) return;
    const propagation = { propagationPolicy: "Foreground" };
    for (const path of [
      `${this.deploymentPath}/${this.deploymentName}`,
      `${this.configMapPath}/${configMapName(this.deploymentName)}`,
    ]) {
      try {
        await this.client().request("DELETE", path, { body: propagation });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    const deadline = Date.now() + this.settings.timeoutMs;
    while ((await this.deployment()) || (await this.pods(true)).length > 0) {
      if (Date.now() >= deadline)
        throw new Error(`${this.where} is still being deleted; check kubectl -n ${this.namespace} get pods`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /**
   * Execs `kilnd dial-stdio` in the chosen pod. A pod can go away between listing and exec (a
   * scale-down, a node drain): the choice is made again, a few times with a growing pause, as
   * Buildx retries its dial; refused credentials or permissions are not retried.
   */
  async dial(): Promise<Duplex> {
    for (let attempt = 1; ; attempt++) {
      try {
        const pod = await this.choosePod();
        return await this.client().exec(this.namespace, pod, ENGINE_CONTAINER, ["kilnd", "dial-stdio"]);
      } catch (err) {
        const refused = err instanceof KubeApiError && (err.statusCode === 401 || err.statusCode === 403);
        if (refused || attempt >= DIAL_TRIES) throw err;
        await new Promise((r) => setTimeout(r, attempt * DIAL_STEP_MS));
      }
    }
  }

  engine(): Promise<BuildEngine> {
    return dialEngine({ duplex: () => this.dial() });
  }

  features(): DriverFeatures {
    return engineFeatures(this.settings.defaultLoad);
  }
}
