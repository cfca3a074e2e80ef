// The Kubernetes API objects the kubernetes driver reads and writes, typed as far as it uses them
// (apps/v1 Deployment, v1 ConfigMap, v1 Pod, v1 Status). Fields it never sets or reads are left
// out; the API server fills in the rest.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  uid?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
}

export interface Toleration {
  key?: string;
  operator?: "Exists" | "Equal";
  value?: string;
  effect?: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
  tolerationSeconds?: number;
}

export type ResourceName = "cpu" | "memory" | "ephemeral-storage";
export type ResourceList = Partial<Record<ResourceName, string>>;

export interface ExecProbe {
  exec: { command: string[] };
  periodSeconds?: number;
  timeoutSeconds?: number;
}

export interface Container {
  name: string;
  image: string;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  command?: string[];
  args?: string[];
  env?: { name: string; value: string }[];
  securityContext?: { privileged?: boolean };
  readinessProbe?: ExecProbe;
  resources?: { requests?: ResourceList; limits?: ResourceList };
  volumeMounts?: { name: string; mountPath: string }[];
}

export type Volume =
  | { name: string; emptyDir: Record<string, never> }
  | { name: string; configMap: { name: string } };

export interface PodSpec {
  containers: Container[];
  volumes?: Volume[];
  nodeSelector?: Record<string, string>;
  tolerations?: Toleration[];
  serviceAccountName?: string;
  schedulerName?: string;
}

export interface Deployment {
  apiVersion: "apps/v1";
  kind: "Deployment";
  metadata: ObjectMeta;
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: { metadata: Omit<ObjectMeta, "name">; spec: PodSpec };
  };
  status?: {
    replicas?: number;
    readyReplicas?: number;
    availableReplicas?: number;
    updatedReplicas?: number;
  };
}

export interface ConfigMap {
  apiVersion: "v1";
  kind: "ConfigMap";
  metadata: ObjectMeta;
  data: Record<string, string>;
}

export type PodPhase = "Pending" | "Running" | "Succeeded" | "Failed" | "Unknown";

export interface ContainerStatus {
  name: string;
  ready: boolean;
  state: {
    running?: { startedAt?: string };
    waiting?: { reason?: string; message?: string };
    terminated?: { exitCode: number; reason?: string; message?: string };
  };
}

export interface Pod {
  apiVersion: "v1";
  kind: "Pod";
  metadata: ObjectMeta;
  spec: PodSpec;
  status: {
    phase: PodPhase;
    conditions?: { type: string; status: "True" | "False" | "Unknown" }[];
    containerStatuses?: ContainerStatus[];
  };
}

export interface PodList {
  apiVersion: "v1";
  kind: "PodList";
  items: Pod[];
}

/** The API server's answer to a failed request, and to a finished exec (channel 3). */
export interface Status {
  apiVersion?: "v1";
  kind: "Status";
  status: "Success" | "Failure";
  message?: string;
  reason?: string;
  code?: number;
  details?: { causes?: { reason?: string; message?: string }[] };
}

/** Whether a pod's Ready condition is true. */
export function podReady(pod: Pod): boolean {
  return pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}
