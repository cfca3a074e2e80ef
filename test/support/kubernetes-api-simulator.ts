// A Kubernetes API simulator for tests: no API server can be installed on the test machine, so
// this HTTP server on 127.0.0.1 answers the subset of the Kubernetes API that the kubernetes
// driver uses — Deployments (create, get, merge-patch, delete), ConfigMaps (create, get, replace,
// delete), Pods (list by label selector, get) and pod exec over WebSocket (`v5.channel.k8s.io`,
// `v4.channel.k8s.io`) — and backs it with REAL containers in the test world's dockerd: a
// Deployment of N replicas runs N containers of its pod template (image, command, args, env,
// privileged, emptyDir and ConfigMap volumes), a pod is Ready once its exec readiness probe
// passes in the container, and an exec is a `docker exec` in the pod's container. What it does
// not simulate: scheduling (node selectors, tolerations, resources are stored, not enforced),
// ReplicaSets, watches, RBAC. Pods share the host's network: the simulator has no pod network,
// and the test world's registries listen on loopback only. It records every exec, so tests can
// tell which pod served a client.
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import Docker from "dockerode";
import * as tarStream from "tar-stream";
import { type WebSocket, WebSocketServer } from "ws";
import { stringify as toYaml } from "yaml";
import { execCollect, StdStreamDemuxer } from "../../drivers/docker-api/exec-stream.js";
import {
  engineHostConfig,
  isPrivilegeRefusal,
  type PrivilegeMode,
} from "../../drivers/docker-container/host-config.js";
import type { ContainerSettings } from "../../drivers/docker-container/options.js";
import type { ConfigMap, Deployment, Pod, Status } from "../../drivers/kubernetes/kube-objects.js";

export const SIMULATOR_LABEL = "org.kiln.kubernetes-api-simulator";
const PROBE_INTERVAL_MS = 250;
/** A privileged pod's container: the docker-container driver's engine settings, on the host network. */
const POD_HOST_SETTINGS: ContainerSettings = {
  networkMode: "host",
  env: [],
  restartPolicy: { Name: "no" },
  defaultLoad: false,
};

export interface KubernetesApiSimulatorOptions {
  /** dockerd's address (unix:///var/run/docker.sock), where pods run as containers. */
  readonly dockerHost: string;
  /** Namespaces besides `default`. */
  readonly namespaces?: readonly string[];
}

export interface RecordedExec {
  readonly namespace: string;
  readonly pod: string;
  readonly command: readonly string[];
  /** The exec subprotocol agreed with the client. */
  readonly protocol: string;
}

interface SimPod {
  readonly object: Pod;
  readonly deployment: string;
  containerId?: string;
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

function statusBody(code: number, reason: string, message: string): Status {
  return { apiVersion: "v1", kind: "Status", status: "Failure", message, reason, code };
}

/** RFC 7386 JSON merge patch: objects merge, null deletes, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target && typeof target === "object" && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Equality-based label selectors (`a=b,c==d`), the kind the driver sends. */
function matchesSelector(labels: Record<string, string> | undefined, selector: string | null): boolean {
  if (!selector) return true;
  return selector.split(",").every((term) => {
    const m = /^([^=!]+)==?(.*)$/.exec(term.trim());
    if (!m) throw new HttpError(400, "BadRequest", `unable to parse requirement: ${term}`);
    return labels?.[m[1]!] === m[2];
  });
}

function randomSuffix(length: number): string {
  const alphabet = "bcdfghjklmnpqrstvwxz2456789";
  return [...randomBytes(length)].map((b) => alphabet[b % alphabet.length]).join("");
}

export class KubernetesApiSimulator {
  readonly execs: RecordedExec[] = [];
  /**
   * The exec subprotocols served, preferred first: v5 (Kubernetes 1.30+) can close stdin alone;
   * older API servers speak only v4.
   */
  execProtocols: string[] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
  readonly token = randomBytes(16).toString("hex");
  private readonly id = randomBytes(4).toString("hex");
  private readonly docker: Docker;
  private readonly namespaces: Set<string>;
  private readonly deployments = new Map<string, Deployment>();
  private readonly configMaps = new Map<string, ConfigMap>();
  private readonly pods = new Map<string, SimPod>();
  /** Reconciles of one Deployment run one after another. */
  private readonly reconciles = new Map<string, Promise<void>>();
  private readonly sockets = new Set<WebSocket>();
  private readonly server: Server;
  private readonly wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (offered) => this.execProtocols.find((p) => offered.has(p)) ?? false,
  });
  private closed = false;

  private constructor(opts: KubernetesApiSimulatorOptions) {
    this.docker = new Docker({ socketPath: new URL(opts.dockerHost).pathname });
    this.namespaces = new Set(["default", ...(opts.namespaces ?? [])]);
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => this.fail(res, err));
    });
    this.server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
      this.upgrade(req, socket, head).catch((err: Error) => {
        const e = err instanceof HttpError ? err : new HttpError(500, "InternalError", err.message);
        const body = JSON.stringify(statusBody(e.code, e.reason, e.message));
        socket.end(
          `HTTP/1.1 ${e.code} ${e.reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
        );
      });
    });
  }

  static async start(opts: KubernetesApiSimulatorOptions): Promise<KubernetesApiSimulator> {
    const sim = new KubernetesApiSimulator(opts);
    await new Promise<void>((resolve) => sim.server.listen(0, "127.0.0.1", resolve));
    return sim;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** A kubeconfig whose current context is this simulator, with its bearer token. */
  kubeconfig(namespace?: string): string {
    return toYaml({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "simulator", cluster: { server: this.url } }],
      users: [{ name: "simulator-user", user: { token: this.token } }],
      contexts: [
        {
          name: "simulator",
          context: { cluster: "simulator", user: "simulator-user", ...(namespace ? { namespace } : {}) },
        },
      ],
      "current-context": "simulator",
    });
  }

  deployment(namespace: string, name: string): Deployment | undefined {
    const d = this.deployments.get(`${namespace}/${name}`);
    return d && this.withStatus(d);
  }

  configMap(namespace: string, name: string): ConfigMap | undefined {
    return this.configMaps.get(`${namespace}/${name}`);
  }

  /** The pods of a Deployment, as the API lists them. */
  podsOf(namespace: string, deployment: string): Pod[] {
    return [...this.pods.values()]
      .filter((p) => p.object.metadata.namespace === namespace && p.deployment === deployment)
      .map((p) => p.object);
  }

  /** The dockerd container backing a pod. */
  containerOf(namespace: string, pod: string): string | undefined {
    return this.pods.get(`${namespace}/${pod}`)?.containerId;
  }

  /** Every container this simulator has running or stopped in dockerd. */
  async containers(): Promise<Docker.ContainerInfo[]> {
    return this.docker.listContainers({ all: true, filters: { label: [`${SIMULATOR_LABEL}=${this.id}`] } });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const ws of this.sockets) ws.terminate();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await Promise.allSettled([...this.reconciles.values()]);
    for (const c of await this.containers())
      await this.docker
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch(() => {});
  }

  // --- HTTP API ---

  private fail(res: ServerResponse, err: Error): void {
    const e = err instanceof HttpError ? err : new HttpError(500, "InternalError", err.message);
    this.reply(res, e.code, statusBody(e.code, e.reason, e.message));
  }

  private reply(res: ServerResponse, code: number, body: unknown): void {
    if (res.headersSent) return;
    const text = JSON.stringify(body);
    res.writeHead(code, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  }

  private authorize(req: IncomingMessage): void {
    if (req.headers.authorization !== `Bearer ${this.token}`)
      throw new HttpError(401, "Unauthorized", "Unauthorized");
  }

  private namespace(ns: string): string {
    if (!this.namespaces.has(ns)) throw new HttpError(404, "NotFound", `namespaces "${ns}" not found`);
    return ns;
  }

  private async readBody(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString();
    if (!text) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw new HttpError(400, "BadRequest", "the request body is not JSON");
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.authorize(req);
    const url = new URL(req.url ?? "/", "http://simulator");
    const method = req.method ?? "GET";
    const body = await this.readBody(req);
    let m = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/deployments(?:\/([^/]+))?$/.exec(url.pathname);
    if (m) {
      this.deploymentRoute(res, method, this.namespace(m[1]!), m[2], body, req.headers["content-type"]);
      return;
    }
    m = /^\/api\/v1\/namespaces\/([^/]+)\/configmaps(?:\/([^/]+))?$/.exec(url.pathname);
    if (m) {
      this.configMapRoute(res, method, this.namespace(m[1]!), m[2], body);
      return;
    }
    m = /^\/api\/v1\/namespaces\/([^/]+)\/pods(?:\/([^/]+))?$/.exec(url.pathname);
    if (m && method === "GET") {
      const ns = this.namespace(m[1]!);
      if (m[2]) {
        const pod = this.pods.get(`${ns}/${m[2]}`);
        if (!pod) throw new HttpError(404, "NotFound", `pods "${m[2]}" not found`);
        this.reply(res, 200, pod.object);
        return;
      }
      const selector = url.searchParams.get("labelSelector");
      const items = [...this.pods.values()]
        .map((p) => p.object)
        .filter((p) => p.metadata.namespace === ns && matchesSelector(p.metadata.labels, selector));
      this.reply(res, 200, { apiVersion: "v1", kind: "PodList", items });
      return;
    }
    throw new HttpError(404, "NotFound", "the server could not find the requested resource");
  }

  private deploymentRoute(
    res: ServerResponse,
    method: string,
    ns: string,
    name: string | undefined,
    body: unknown,
    contentType: string | undefined,
  ): void {
    const key = `${ns}/${name}`;
    if (!name && method === "POST") {
      const d = body as Deployment;
      const n = d?.metadata?.name;
      if (!n)
        throw new HttpError(422, "Invalid", "Deployment.apps is invalid: metadata.name: Required value");
      if (this.deployments.has(`${ns}/${n}`))
        throw new HttpError(409, "AlreadyExists", `deployments.apps "${n}" already exists`);
      this.validateDeployment(d);
      const created: Deployment = {
        ...d,
        metadata: {
          ...d.metadata,
          namespace: ns,
          uid: randomBytes(16).toString("hex"),
          creationTimestamp: new Date().toISOString(),
        },
      };
      this.deployments.set(`${ns}/${n}`, created);
      this.reconcile(ns, n);
      this.reply(res, 201, this.withStatus(created));
      return;
    }
    const existing = name ? this.deployments.get(key) : undefined;
    if (!name || !existing) {
      if (!name) throw new HttpError(405, "MethodNotAllowed", `${method} on deployments is not supported`);
      throw new HttpError(404, "NotFound", `deployments.apps "${name}" not found`);
    }
    switch (method) {
      case "GET":
        this.reply(res, 200, this.withStatus(existing));
        return;
      case "PATCH": {
        if (!/^application\/(merge-patch|strategic-merge-patch)\+json/.test(contentType ?? ""))
          throw new HttpError(
            415,
            "UnsupportedMediaType",
            `the simulator does not apply ${contentType} patches`,
          );
        const patched = mergePatch(existing, body) as Deployment;
        this.validateDeployment(patched);
        this.deployments.set(key, patched);
        this.reconcile(ns, name);
        this.reply(res, 200, this.withStatus(patched));
        return;
      }
      case "DELETE": {
        // Foreground deletion: the Deployment stays, marked, until its pods are gone.
        existing.metadata.deletionTimestamp = new Date().toISOString();
        this.reconcile(ns, name);
        this.reply(res, 200, this.withStatus(existing));
        return;
      }
      default:
        throw new HttpError(405, "MethodNotAllowed", `${method} on a deployment is not supported`);
    }
  }

  private validateDeployment(d: Deployment): void {
    const replicas = d.spec?.replicas;
    if (!Number.isInteger(replicas) || replicas < 0)
      throw new HttpError(
        422,
        "Invalid",
        "Deployment.apps is invalid: spec.replicas: must be a non-negative integer",
      );
    const selector = d.spec.selector?.matchLabels ?? {};
    const labels = d.spec.template?.metadata?.labels ?? {};
    if (!Object.keys(selector).length || Object.entries(selector).some(([k, v]) => labels[k] !== v))
      throw new HttpError(
        422,
        "Invalid",
        "Deployment.apps is invalid: spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`",
      );
    if (!d.spec.template.spec?.containers?.length)
      throw new HttpError(
        422,
        "Invalid",
        "Deployment.apps is invalid: spec.template.spec.containers: Required value",
      );
  }

  private configMapRoute(
    res: ServerResponse,
    method: string,
    ns: string,
    name: string | undefined,
    body: unknown,
  ): void {
    if (!name && method === "POST") {
      const c = body as ConfigMap;
      const n = c?.metadata?.name;
      if (!n) throw new HttpError(422, "Invalid", "ConfigMap is invalid: metadata.name: Required value");
      if (this.configMaps.has(`${ns}/${n}`))
        throw new HttpError(409, "AlreadyExists", `configmaps "${n}" already exists`);
      const created = { ...c, metadata: { ...c.metadata, namespace: ns } };
      this.configMaps.set(`${ns}/${n}`, created);
      this.reply(res, 201, created);
      return;
    }
    const key = `${ns}/${name}`;
    const existing = name ? this.configMaps.get(key) : undefined;
    if (!name || !existing) {
      if (!name) throw new HttpError(405, "MethodNotAllowed", `${method} on configmaps is not supported`);
      throw new HttpError(404, "NotFound", `configmaps "${name}" not found`);
    }
    switch (method) {
      case "GET":
        this.reply(res, 200, existing);
        return;
      case "PUT": {
        const replaced = {
          ...(body as ConfigMap),
          metadata: { ...(body as ConfigMap).metadata, namespace: ns },
        };
        this.configMaps.set(key, replaced);
        this.reply(res, 200, replaced);
        return;
      }
      case "DELETE":
        this.configMaps.delete(key);
        this.reply(res, 200, { apiVersion: "v1", kind: "Status", status: "Success" });
        return;
      default:
        throw new HttpError(405, "MethodNotAllowed", `${method} on a configmap is not supported`);
    }
  }

  private withStatus(d: Deployment): Deployment {
    const pods = this.podsOf(d.metadata.namespace!, d.metadata.name);
    const ready = pods.filter((p) =>
      p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
    ).length;
    return {
      ...d,
      status: {
        replicas: pods.length,
        readyReplicas: ready,
        availableReplicas: ready,
        updatedReplicas: pods.length,
      },
    };
  }

  // --- the pods: containers in dockerd ---

  /** Brings a Deployment's pods to its replica count (none once it is being deleted). */
  private reconcile(ns: string, name: string): void {
    const key = `${ns}/${name}`;
    const next = (this.reconciles.get(key) ?? Promise.resolve())
      .then(async () => {
        const d = this.deployments.get(key);
        const want = !d || d.metadata.deletionTimestamp ? 0 : d.spec.replicas;
        const pods = [...this.pods.values()].filter(
          (p) => p.object.metadata.namespace === ns && p.deployment === name,
        );
        for (let i = pods.length; i < want && !this.closed; i++) await this.startPod(d!);
        // Like a ReplicaSet scaling down: the newest pods go first.
        for (const p of pods.slice(want).reverse()) await this.deletePod(p);
        if (d?.metadata.deletionTimestamp && this.podsOf(ns, name).length === 0) this.deployments.delete(key);
      })
      .catch((err: Error) => {
        process.stderr.write(`kubernetes API simulator: reconciling deployment ${key}: ${err.message}\n`);
      });
    this.reconciles.set(key, next);
  }

  private async startPod(d: Deployment): Promise<void> {
    const ns = d.metadata.namespace!;
    const template = d.spec.template;
    const name = `${d.metadata.name}-${randomSuffix(10)}-${randomSuffix(5)}`;
    const spec = template.spec;
    const c = spec.containers[0]!;
    const pod: SimPod = {
      deployment: d.metadata.name,
      object: {
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name,
          namespace: ns,
          labels: { ...template.metadata.labels },
          annotations: { ...template.metadata.annotations },
          uid: randomBytes(16).toString("hex"),
          creationTimestamp: new Date().toISOString(),
        },
        spec,
        status: {
          phase: "Pending",
          conditions: [{ type: "Ready", status: "False" }],
          containerStatuses: [
            { name: c.name, ready: false, state: { waiting: { reason: "ContainerCreating" } } },
          ],
        },
      },
    };
    this.pods.set(`${ns}/${name}`, pod);
    const waiting = (reason: string, message: string) => {
      pod.object.status.containerStatuses = [
        { name: c.name, ready: false, state: { waiting: { reason, message } } },
      ];
    };
    try {
      await this.ensureImage(
        c.image,
        c.imagePullPolicy ?? (c.image.endsWith(":latest") ? "Always" : "IfNotPresent"),
      );
    } catch (err) {
      waiting("ErrImagePull", (err as Error).message);
      return;
    }
    const mounts: Docker.MountSettings[] = [];
    const configFiles: { dir: string; data: Record<string, string> }[] = [];
    for (const vm of c.volumeMounts ?? []) {
      const volume = spec.volumes?.find((v) => v.name === vm.name);
      if (volume && "emptyDir" in volume)
        mounts.push({ Type: "volume", Target: vm.mountPath } as Docker.MountSettings);
      else if (volume && "configMap" in volume) {
        const cm = this.configMaps.get(`${ns}/${volume.configMap.name}`);
        if (!cm) {
          waiting("CreateContainerConfigError", `configmap "${volume.configMap.name}" not found`);
          return;
        }
        configFiles.push({ dir: vm.mountPath, data: cm.data });
      }
    }
    const privileged = c.securityContext?.privileged === true;
    const create = (mode: PrivilegeMode | "unprivileged") =>
      this.docker.createContainer({
        name: `kiln-k8s-sim-${ns}-${name}`,
        Image: c.image,
        ...(c.command ? { Entrypoint: c.command } : {}),
        Cmd: c.args ?? [],
        Env: (c.env ?? []).map((e) => `${e.name}=${e.value}`),
        Labels: {
          [SIMULATOR_LABEL]: this.id,
          "io.kubernetes.pod.namespace": ns,
          "io.kubernetes.pod.name": name,
        },
        HostConfig:
          mode === "unprivileged"
            ? { NetworkMode: "host", Mounts: mounts }
            : engineHostConfig(POD_HOST_SETTINGS, mounts, mode),
      });
    const createAndStart = async (mode: PrivilegeMode | "unprivileged") => {
      const container = await create(mode);
      pod.containerId = container.id;
      for (const f of configFiles) await this.copyFiles(container, f.dir, f.data);
      await container.start();
      return container;
    };
    let container: Docker.Container;
    try {
      try {
        container = await createAndStart(privileged ? "privileged" : "unprivileged");
      } catch (err) {
        if (!privileged || !isPrivilegeRefusal(err)) throw err;
        // A dockerd that cannot start privileged containers (it runs inside a container itself):
        // grant what privileged means there, as the docker-container driver does.
        await this.docker.getContainer(pod.containerId!).remove({ force: true, v: true });
        container = await createAndStart("capabilities");
      }
    } catch (err) {
      waiting("RunContainerError", (err as Error).message);
      return;
    }
    pod.object.status.phase = "Running";
    pod.object.status.containerStatuses = [
      { name: c.name, ready: false, state: { running: { startedAt: new Date().toISOString() } } },
    ];
    void this.probe(pod, container);
  }

  /** Runs the readiness probe until it passes (or the container dies). */
  private async probe(pod: SimPod, container: Docker.Container): Promise<void> {
    const key = `${pod.object.metadata.namespace}/${pod.object.metadata.name}`;
    const probe = pod.object.spec.containers[0]!.readinessProbe;
    while (!this.closed && this.pods.has(key)) {
      const passed = probe
        ? await execCollect(container, probe.exec.command).then(
            (r) => r.exitCode === 0,
            () => false,
          )
        : true;
      if (passed) {
        pod.object.status.conditions = [{ type: "Ready", status: "True" }];
        pod.object.status.containerStatuses![0]!.ready = true;
        return;
      }
      const state = await container.inspect().catch(() => undefined);
      if (state && !state.State.Running) {
        pod.object.status.phase = "Failed";
        pod.object.status.containerStatuses = [
          {
            name: pod.object.spec.containers[0]!.name,
            ready: false,
            state: { terminated: { exitCode: state.State.ExitCode, reason: "Error" } },
          },
        ];
        return;
      }
      await new Promise((r) => setTimeout(r, PROBE_INTERVAL_MS));
    }
  }

  private async deletePod(pod: SimPod): Promise<void> {
    const key = `${pod.object.metadata.namespace}/${pod.object.metadata.name}`;
    pod.object.metadata.deletionTimestamp = new Date().toISOString();
    if (pod.containerId)
      await this.docker
        .getContainer(pod.containerId)
        .remove({ force: true, v: true })
        .catch((err: { statusCode?: number }) => {
          if (err.statusCode !== 404) throw err;
        });
    this.pods.delete(key);
  }

  private async ensureImage(image: string, policy: "Always" | "IfNotPresent" | "Never"): Promise<void> {
    const present = await this.docker
      .getImage(image)
      .inspect()
      .then(
        () => true,
        () => false,
      );
    if (present && policy !== "Always") return;
    if (policy === "Never")
      throw new Error(`container image "${image}" is not present with pull policy of Never`);
    const stream = await this.docker.pull(image);
    await new Promise<void>((resolve, reject) =>
      this.docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve())),
    );
  }

  private async copyFiles(
    container: Docker.Container,
    dir: string,
    data: Record<string, string>,
  ): Promise<void> {
    const pack = tarStream.pack();
    pack.entry({ name: `${dir.replace(/^\//, "")}/`, type: "directory", mode: 0o755 });
    for (const [file, text] of Object.entries(data))
      pack.entry({ name: `${dir.replace(/^\//, "")}/${file}`, mode: 0o644 }, text);
    pack.finalize();
    await container.putArchive(pack as unknown as NodeJS.ReadableStream, { path: "/" });
  }

  // --- pod exec over WebSocket ---

  private async upgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    this.authorize(req);
    const url = new URL(req.url ?? "/", "http://simulator");
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/exec$/.exec(url.pathname);
    if (!m) throw new HttpError(404, "NotFound", "the server could not find the requested resource");
    const ns = this.namespace(m[1]!);
    const pod = this.pods.get(`${ns}/${m[2]}`);
    if (!pod) throw new HttpError(404, "NotFound", `pods "${m[2]}" not found`);
    const command = url.searchParams.getAll("command");
    if (!command.length) throw new HttpError(400, "BadRequest", "you must specify at least 1 command");
    const containerName = url.searchParams.get("container") ?? pod.object.spec.containers[0]!.name;
    if (!pod.object.spec.containers.some((c) => c.name === containerName))
      throw new HttpError(400, "BadRequest", `container ${containerName} is not valid for pod ${m[2]}`);
    if (pod.object.status.phase !== "Running" || !pod.containerId)
      throw new HttpError(400, "BadRequest", `pod ${m[2]} is not running`);
    const stdin = url.searchParams.get("stdin") === "true";
    const exec = await this.docker.getContainer(pod.containerId).exec({
      Cmd: command,
      AttachStdin: stdin,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
    });
    const stream = (await exec.start({ hijack: true, stdin })) as unknown as Duplex;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.execs.push({ namespace: ns, pod: m[2]!, command, protocol: ws.protocol });
      this.relay(ws, exec, stream);
    });
  }

  /** Joins a WebSocket to a docker exec: channel 0 in, channels 1 and 2 out, the exit Status on 3. */
  private relay(ws: WebSocket, exec: Docker.Exec, stream: Duplex): void {
    this.sockets.add(ws);
    const send = (channel: number, payload: Buffer) => {
      if (ws.readyState === ws.OPEN) ws.send(Buffer.concat([Buffer.from([channel]), payload]));
    };
    const demux = new StdStreamDemuxer((s, payload) => send(s === "stdout" ? 1 : 2, Buffer.from(payload)));
    stream.pipe(demux);
    ws.on("message", (data: Buffer) => {
      if (data.length === 0) return;
      if (data[0] === 0) stream.write(data.subarray(1));
      // v5: the client closed its stdin.
      else if (data[0] === 255 && data[1] === 0 && ws.protocol === "v5.channel.k8s.io") stream.end();
    });
    ws.on("close", () => {
      this.sockets.delete(ws);
      stream.destroy();
    });
    let finished = false;
    const finish = async () => {
      if (finished) return;
      finished = true;
      const info = await exec.inspect().catch(() => undefined);
      const code = info?.ExitCode ?? 0;
      const status: Status =
        code === 0
          ? { kind: "Status", status: "Success" }
          : {
              kind: "Status",
              status: "Failure",
              reason: "NonZeroExitCode",
              message: `command terminated with non-zero exit code: exit status ${code}`,
              details: { causes: [{ reason: "ExitCode", message: String(code) }] },
            };
      send(3, Buffer.from(JSON.stringify(status)));
      ws.close(1000);
    };
    demux.on("finish", () => void finish());
    stream.on("close", () => void finish());
  }
}
