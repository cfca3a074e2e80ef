// Test fixtures for the LLB builder and the Dockerfile converter: an in-memory image "registry"
// (the converter's real input is image configs, so a map of them is the real thing here) and
// helpers to look at the vertices of a definition.

import type { ResolveImageFn } from "../../../src/frontend/dockerfile/convert/types.js";
import { type Definition, topologicalOrder } from "../../../src/llb/definition.js";
import type { CopyAction, ExecOp, FileOp, SourceOp, Vertex, VertexMetadata } from "../../../src/llb/ops.js";
import { type Digest, sha256Digest } from "../../../src/oci/digest.js";
import { formatPlatform, type Platform } from "../../../src/oci/platform.js";
import type { ImageConfig } from "../../../src/oci/spec.js";

const layer = (n: string) => sha256Digest(`layer ${n}`);

function img(arch: string, config: ImageConfig["config"], extra: Partial<ImageConfig> = {}): ImageConfig {
  return {
    architecture: arch,
    os: "linux",
    config,
    rootfs: { type: "layers", diff_ids: [layer(JSON.stringify(config) + arch)] },
    history: [{ created_by: "/bin/sh -c #(nop) ADD file:rootfs in /" }],
    ...extra,
  };
}

/** Image configs by normalised reference and platform (`ref|os/arch`), or by reference alone. */
export const IMAGES: Record<string, ImageConfig> = {
  "docker.io/library/busybox:latest": img("amd64", {
    Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    Cmd: ["sh"],
  }),
  "docker.io/library/busybox:latest|linux/arm64": img("arm64", {
    Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    Cmd: ["sh"],
  }),
  "docker.io/library/alpine:3.20": img("amd64", {
    Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    Cmd: ["/bin/sh"],
  }),
  "docker.io/library/golang:1.22": img("amd64", {
    Env: [
      "PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "GOPATH=/go",
    ],
    WorkingDir: "/go",
    Cmd: ["bash"],
  }),
  "docker.io/library/nginx:latest": img("amd64", {
    Env: ["PATH=/usr/local/bin:/usr/bin:/bin", "NGINX_VERSION=1.27"],
    Entrypoint: ["/docker-entrypoint.sh"],
    Cmd: ["nginx", "-g", "daemon off;"],
    ExposedPorts: { "80/tcp": {} },
    StopSignal: "SIGQUIT",
    Labels: { maintainer: "NGINX" },
    User: "",
  }),
  "docker.io/library/app:user": img("amd64", {
    Env: ["PATH=/usr/bin:/bin"],
    User: "app",
    WorkingDir: "/home/app",
  }),
  "docker.io/library/onbuild:latest": img("amd64", {
    Env: ["PATH=/usr/bin:/bin"],
    OnBuild: ["RUN echo from-onbuild", "COPY --from=busybox /bin/busybox /ob-busybox"],
  }),
  "docker.io/library/empty:latest": {
    architecture: "amd64",
    os: "linux",
    config: { Env: ["PATH=/bin"] },
    rootfs: { type: "layers", diff_ids: [] },
    history: [{ created_by: "nothing", empty_layer: true }],
  },
  "docker.io/library/armonly:latest": img("arm64", { Env: ["PATH=/bin"] }),
  "127.0.0.1:5000/team/base:v1": img("amd64", { Env: ["PATH=/bin", "TEAM=1"] }),
};

/** The digest the fake registry pins a reference to. */
export function pinOf(ref: string, platform?: Platform): Digest {
  return sha256Digest(`manifest ${ref} ${platform ? formatPlatform(platform) : ""}`);
}

/** A resolveImage over IMAGES (or another map); records every call. */
export function resolver(images: Record<string, ImageConfig> = IMAGES, calls: string[] = []): ResolveImageFn {
  return async (ref, platform) => {
    calls.push(`${ref} ${formatPlatform(platform)}`);
    const config = images[`${ref}|${formatPlatform(platform)}`] ?? images[ref];
    if (!config) throw new Error(`${ref}: not found`);
    return { ref: `${ref}@${pinOf(ref, platform)}`, config: structuredClone(config) };
  };
}

export interface V {
  readonly digest: Digest;
  readonly vertex: Vertex;
  readonly md?: VertexMetadata;
}

/** Every vertex, inputs first. */
export function vertices(def: Definition): V[] {
  return topologicalOrder(def).map((d) => ({
    digest: d,
    vertex: def.vertices.get(d)!,
    md: def.metadata.get(d),
  }));
}

export function execs(def: Definition): (V & { op: ExecOp })[] {
  return vertices(def)
    .filter((v) => v.vertex.op.kind === "exec")
    .map((v) => ({ ...v, op: v.vertex.op as ExecOp }));
}

export function fileOps(def: Definition): (V & { op: FileOp })[] {
  return vertices(def)
    .filter((v) => v.vertex.op.kind === "file")
    .map((v) => ({ ...v, op: v.vertex.op as FileOp }));
}

export function sources(def: Definition): (V & { op: SourceOp })[] {
  return vertices(def)
    .filter((v) => v.vertex.op.kind === "source")
    .map((v) => ({ ...v, op: v.vertex.op as SourceOp }));
}

export function copies(def: Definition): CopyAction[] {
  return fileOps(def).flatMap((f) =>
    f.op.steps.map((s) => s.action).filter((a): a is CopyAction => a.type === "copy"),
  );
}

/** The vertex the definition's root points at. */
export function rootVertex(def: Definition): V {
  const d = def.root!.vertex;
  return { digest: d, vertex: def.vertices.get(d)!, md: def.metadata.get(d) };
}

/** The vertex an input of `v` points at. */
export function inputVertex(def: Definition, v: Vertex, i: number): V {
  const d = v.inputs[i]!.vertex;
  return { digest: d, vertex: def.vertices.get(d)!, md: def.metadata.get(d) };
}

export const AMD64: Platform = { os: "linux", architecture: "amd64" };
export const ARM64: Platform = { os: "linux", architecture: "arm64" };
