// The objects a kubernetes node consists of: a Deployment whose pods run kilnd in a privileged
// container, and, when the builder has an engine configuration file, a ConfigMap holding it that
// the pods mount where kilnd reads it. The engine's state lives in an emptyDir volume: on the
// node's disk rather than in the container's overlay filesystem, where its own overlay snapshots
// could not be mounted.
import { formatPlatform, type Platform } from "../../src/oci/platform.js";
import type { ConfigMap, Container, Deployment, Volume } from "./kube-objects.js";
import type { KubernetesSettings } from "./options.js";

export const ENGINE_CONTAINER = "kilnd";
/** Where kilnd keeps its state and reads its configuration (as in the docker-container driver). */
export const ENGINE_STATE_DIR = "/var/lib/kiln";
export const ENGINE_CONFIG_DIR = "/etc/kiln";
export const ENGINE_CONFIG_KEY = "kilnd.toml";
/** The platforms the node declares (create --platform), for whoever inspects the Deployment. */
export const PLATFORM_ANNOTATION = "kiln.build/platforms";

export interface EngineDeploymentSpec {
  /** The node's name: names the Deployment and labels its pods. */
  readonly name: string;
  readonly namespace: string;
  readonly image: string;
  /** The image exists only in the nodes' local stores and must not be pulled. */
  readonly localImage: boolean;
  readonly flags: readonly string[];
  readonly configFile?: string;
  readonly platforms: readonly Platform[];
  readonly settings: KubernetesSettings;
}

export interface EngineObjects {
  readonly deployment: Deployment;
  readonly configMap?: ConfigMap;
}

export function configMapName(node: string): string {
  return `${node}-config`;
}

/** The label selecting the node's pods. */
export function podSelector(node: string): Record<string, string> {
  return { app: node };
}

export function engineObjects(spec: EngineDeploymentSpec): EngineObjects {
  const s = spec.settings;
  const selector = podSelector(spec.name);
  // The selector's label wins over a user label of the same key: otherwise the Deployment
  // would not own its own pods.
  const labels = { ...s.labels, ...selector };
  const annotations: Record<string, string> = { ...s.annotations };
  if (spec.platforms.length) annotations[PLATFORM_ANNOTATION] = spec.platforms.map(formatPlatform).join(",");

  const volumes: Volume[] = [{ name: "state", emptyDir: {} }];
  const container: Container = {
    name: ENGINE_CONTAINER,
    image: spec.image,
    ...(spec.localImage ? { imagePullPolicy: "IfNotPresent" as const } : {}),
    args: ["--root", ENGINE_STATE_DIR, ...spec.flags],
    securityContext: { privileged: true },
    // kilnd dial-stdio with no input exits 0 once the engine's socket answers.
    readinessProbe: { exec: { command: ["kilnd", "dial-stdio"] }, periodSeconds: 2, timeoutSeconds: 5 },
    volumeMounts: [{ name: "state", mountPath: ENGINE_STATE_DIR }],
  };
  if (s.env.length) container.env = s.env.map((e) => ({ name: e.name, value: e.value }));
  if (Object.keys(s.requests).length || Object.keys(s.limits).length) {
    container.resources = {
      ...(Object.keys(s.requests).length ? { requests: { ...s.requests } } : {}),
      ...(Object.keys(s.limits).length ? { limits: { ...s.limits } } : {}),
    };
  }

  let configMap: ConfigMap | undefined;
  if (spec.configFile !== undefined) {
    configMap = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: configMapName(spec.name), namespace: spec.namespace, labels, annotations },
      data: { [ENGINE_CONFIG_KEY]: spec.configFile },
    };
    volumes.push({ name: "config", configMap: { name: configMap.metadata.name } });
    container.volumeMounts!.push({ name: "config", mountPath: ENGINE_CONFIG_DIR });
  }

  const deployment: Deployment = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: spec.name, namespace: spec.namespace, labels, annotations },
    spec: {
      replicas: s.replicas,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels, annotations },
        spec: {
          containers: [container],
          volumes,
          ...(Object.keys(s.nodeSelector).length ? { nodeSelector: { ...s.nodeSelector } } : {}),
          ...(s.tolerations.length ? { tolerations: s.tolerations.map((t) => ({ ...t })) } : {}),
          ...(s.serviceAccount ? { serviceAccountName: s.serviceAccount } : {}),
          ...(s.schedulerName ? { schedulerName: s.schedulerName } : {}),
        },
      },
    },
  };
  return { deployment, configMap };
}
