// Which Kubernetes API server a kubernetes node talks to, as kubectl resolves it: the files listed
// in KUBECONFIG (merged: the first file to name a cluster, user or context wins, and the first to
// set current-context), else ~/.kube/config, else the pod's service account when running inside a
// cluster. The context is the one named (the node's endpoint), else the current one; its namespace
// is the default namespace. Credentials: bearer token (inline or file), client certificate, basic
// auth, or an exec credential plugin (client.authentication.k8s.io).
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, dirname, isAbsolute, join } from "node:path";
import { promisify } from "node:util";
import { parse as parseYaml } from "yaml";

interface KubeconfigFile {
  clusters?: { name: string; cluster?: ClusterEntry }[];
  users?: { name: string; user?: UserEntry }[];
  contexts?: { name: string; context?: { cluster?: string; user?: string; namespace?: string } }[];
  "current-context"?: string;
}

interface ClusterEntry {
  server?: string;
  "certificate-authority"?: string;
  "certificate-authority-data"?: string;
  "insecure-skip-tls-verify"?: boolean;
  "tls-server-name"?: string;
}

interface ExecPlugin {
  command: string;
  args?: string[];
  env?: { name: string; value: string }[];
  apiVersion?: string;
}

interface UserEntry {
  token?: string;
  tokenFile?: string;
  "client-certificate"?: string;
  "client-certificate-data"?: string;
  "client-key"?: string;
  "client-key-data"?: string;
  username?: string;
  password?: string;
  exec?: ExecPlugin;
}

export type KubeCredentials =
  | { readonly kind: "none" }
  | { readonly kind: "token"; readonly token: string }
  | { readonly kind: "basic"; readonly username: string; readonly password: string }
  | { readonly kind: "exec"; readonly plugin: ExecPlugin; readonly baseDir: string };

export interface KubeTlsMaterial {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly insecure: boolean;
  readonly servername?: string;
}

/** One API server with everything needed to talk to it. */
export interface KubeTarget {
  /** Where the settings came from, for error messages: `context "x" of /root/.kube/config`. */
  readonly source: string;
  readonly server: URL;
  readonly namespace: string;
  readonly tls: KubeTlsMaterial;
  readonly credentials: KubeCredentials;
}

export class KubeconfigError extends Error {
  override name = "KubeconfigError";
}

const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** The kubeconfig files kubectl would read, in precedence order. */
export function kubeconfigPaths(env: NodeJS.ProcessEnv): string[] {
  if (env.KUBECONFIG) return env.KUBECONFIG.split(delimiter).filter((p) => p !== "");
  return [join(env.HOME || homedir(), ".kube", "config")];
}

interface Located<T> {
  readonly value: T;
  /** The directory of the file that defined it: relative paths in it are relative to that. */
  readonly dir: string;
}

/** Resolves the context named `context` (default: the current context) to an API server. */
export function resolveKubeTarget(env: NodeJS.ProcessEnv, context?: string): KubeTarget {
  const files = kubeconfigPaths(env).filter((p) => existsSync(p));
  if (files.length === 0) {
    if (env.KUBERNETES_SERVICE_HOST && existsSync(join(SERVICE_ACCOUNT_DIR, "token")))
      return inClusterTarget(env);
    throw new KubeconfigError(
      `no kubeconfig found (looked at ${kubeconfigPaths(env).join(", ")}): set KUBECONFIG or create ~/.kube/config, e.g. with your cluster's "get credentials" command`,
    );
  }
  const clusters = new Map<string, Located<ClusterEntry>>();
  const users = new Map<string, Located<UserEntry>>();
  const contexts = new Map<string, { cluster?: string; user?: string; namespace?: string }>();
  let current: string | undefined;
  for (const path of files) {
    let doc: KubeconfigFile;
    try {
      doc = (parseYaml(readFileSync(path, "utf8")) ?? {}) as KubeconfigFile;
    } catch (err) {
      throw new KubeconfigError(`cannot read kubeconfig ${path}: ${(err as Error).message}`);
    }
    const dir = dirname(path);
    for (const c of doc.clusters ?? [])
      if (!clusters.has(c.name)) clusters.set(c.name, { value: c.cluster ?? {}, dir });
    for (const u of doc.users ?? []) if (!users.has(u.name)) users.set(u.name, { value: u.user ?? {}, dir });
    for (const c of doc.contexts ?? []) if (!contexts.has(c.name)) contexts.set(c.name, c.context ?? {});
    current ??= doc["current-context"] || undefined;
  }
  const where = files.join(delimiter);
  const name = context || current;
  if (!name)
    throw new KubeconfigError(`${where} sets no current-context: run kubectl config use-context NAME`);
  const ctx = contexts.get(name);
  if (!ctx) throw new KubeconfigError(`context ${JSON.stringify(name)} is not in ${where}`);
  const source = `context ${JSON.stringify(name)} of ${where}`;
  const cluster = ctx.cluster !== undefined ? clusters.get(ctx.cluster) : undefined;
  if (!cluster?.value.server)
    throw new KubeconfigError(
      `${source} names cluster ${JSON.stringify(ctx.cluster ?? "")}, which has no server`,
    );
  let server: URL;
  try {
    server = new URL(cluster.value.server);
  } catch {
    throw new KubeconfigError(`${source}: invalid server ${JSON.stringify(cluster.value.server)}`);
  }
  const user = ctx.user !== undefined ? users.get(ctx.user) : undefined;
  const c = cluster.value;
  const u = user?.value ?? {};
  return {
    source,
    server,
    namespace: ctx.namespace || "default",
    tls: {
      ca: material(c["certificate-authority-data"], c["certificate-authority"], cluster.dir),
      cert: material(u["client-certificate-data"], u["client-certificate"], user?.dir),
      key: material(u["client-key-data"], u["client-key"], user?.dir),
      insecure: c["insecure-skip-tls-verify"] === true,
      servername: c["tls-server-name"],
    },
    credentials: credentials(u, user?.dir ?? cluster.dir),
  };
}

function material(
  data: string | undefined,
  file: string | undefined,
  dir: string | undefined,
): Buffer | undefined {
  if (data) return Buffer.from(data, "base64");
  if (file) return readFileSync(isAbsolute(file) || !dir ? file : join(dir, file));
  return undefined;
}

function credentials(u: UserEntry, dir: string): KubeCredentials {
  if (u.token) return { kind: "token", token: u.token };
  if (u.tokenFile)
    return {
      kind: "token",
      token: readFileSync(isAbsolute(u.tokenFile) ? u.tokenFile : join(dir, u.tokenFile), "utf8").trim(),
    };
  if (u.exec) return { kind: "exec", plugin: u.exec, baseDir: dir };
  if (u.username !== undefined) return { kind: "basic", username: u.username, password: u.password ?? "" };
  return { kind: "none" };
}

function inClusterTarget(env: NodeJS.ProcessEnv): KubeTarget {
  const host = env.KUBERNETES_SERVICE_HOST!;
  const port = env.KUBERNETES_SERVICE_PORT || "443";
  const read = (f: string) => readFileSync(join(SERVICE_ACCOUNT_DIR, f));
  return {
    source: `the service account of this pod (${SERVICE_ACCOUNT_DIR})`,
    server: new URL(`https://${host.includes(":") ? `[${host}]` : host}:${port}`),
    namespace: existsSync(join(SERVICE_ACCOUNT_DIR, "namespace"))
      ? read("namespace").toString().trim()
      : "default",
    tls: { ca: read("ca.crt"), insecure: false },
    credentials: { kind: "token", token: read("token").toString().trim() },
  };
}

/** What an exec credential plugin returned: a token or a client certificate. */
export interface ExecCredential {
  readonly token?: string;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

/** Runs an exec credential plugin as kubectl does and reads its ExecCredential. */
export async function runExecPlugin(
  plugin: ExecPlugin,
  baseDir: string,
  env: NodeJS.ProcessEnv,
): Promise<ExecCredential> {
  // A command given as a relative path is relative to the kubeconfig's directory; a bare name is looked up in PATH.
  const command =
    plugin.command.includes("/") && !isAbsolute(plugin.command)
      ? join(baseDir, plugin.command)
      : plugin.command;
  const apiVersion = plugin.apiVersion ?? "client.authentication.k8s.io/v1beta1";
  const childEnv: NodeJS.ProcessEnv = {
    ...env,
    ...Object.fromEntries((plugin.env ?? []).map((e) => [e.name, e.value])),
    KUBERNETES_EXEC_INFO: JSON.stringify({
      apiVersion,
      kind: "ExecCredential",
      spec: { interactive: false },
    }),
  };
  let stdout: string;
  try {
    ({ stdout } = await promisify(execFile)(command, plugin.args ?? [], {
      env: childEnv,
      maxBuffer: 1 << 20,
    }));
  } catch (err) {
    const stderr = ((err as { stderr?: string }).stderr ?? "").trim();
    throw new KubeconfigError(
      `kubeconfig credential plugin ${plugin.command} failed: ${stderr || (err as Error).message}`,
    );
  }
  let status: { token?: string; clientCertificateData?: string; clientKeyData?: string } | undefined;
  try {
    status = (JSON.parse(stdout) as { status?: typeof status }).status;
  } catch {
    throw new KubeconfigError(
      `kubeconfig credential plugin ${plugin.command} printed no ExecCredential JSON`,
    );
  }
  if (!status?.token && !status?.clientCertificateData)
    throw new KubeconfigError(
      `kubeconfig credential plugin ${plugin.command} returned neither a token nor a certificate`,
    );
  return {
    token: status.token,
    cert: status.clientCertificateData ? Buffer.from(status.clientCertificateData) : undefined,
    key: status.clientKeyData ? Buffer.from(status.clientKeyData) : undefined,
  };
}
