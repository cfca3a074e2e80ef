// The image config a Dockerfile stage builds up (BuildKit's dockerfile2llb image.go and
// commitToHistory): inherited from the base image, changed by each instruction, with a history
// entry per instruction worded as BuildKit words it.
import { defaultPathEnv } from "../../../llb/builder.js";
import type { Platform } from "../../../oci/platform.js";
import type { ContainerConfig, HistoryEntry, ImageConfig } from "../../../oci/spec.js";

/** BuildKit's history comment on entries the Dockerfile frontend writes. */
export const HISTORY_COMMENT = "buildkit.dockerfile.v0";

/** A mutable working copy of an image config. */
export interface WorkingImage {
  architecture: string;
  os: string;
  variant?: string;
  author?: string;
  config: ContainerConfig;
  rootfs: ImageConfig["rootfs"];
  history: HistoryEntry[];
  /** Other members of the base image's config, kept as they were. */
  extra: Record<string, unknown>;
}

/** The config of an empty (scratch) image: working dir `/`, a default PATH. */
export function emptyImage(p: Platform): WorkingImage {
  const img: WorkingImage = {
    architecture: p.architecture,
    os: p.os,
    config: { WorkingDir: "/" },
    rootfs: { type: "layers", diff_ids: [] },
    history: [],
    extra: {},
  };
  if (p.variant) img.variant = p.variant;
  if (p.os !== "windows") img.config.Env = [`PATH=${defaultPathEnv()}`];
  return img;
}

const KNOWN = new Set(["architecture", "os", "variant", "author", "config", "rootfs", "history", "created"]);

/** A working copy of a base image's config (its `created` dropped, as BuildKit does). */
export function fromImageConfig(cfg: ImageConfig): WorkingImage {
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(cfg as unknown as Record<string, unknown>)) {
    if (!KNOWN.has(k)) extra[k] = structuredClone(v);
  }
  const img: WorkingImage = {
    architecture: cfg.architecture,
    os: cfg.os,
    config: structuredClone(cfg.config ?? {}),
    rootfs: { type: "layers", diff_ids: [...(cfg.rootfs?.diff_ids ?? [])] },
    history: (cfg.history ?? []).map((h) => ({ ...h })),
    extra,
  };
  if (cfg.variant) img.variant = cfg.variant;
  if (cfg.author !== undefined) img.author = cfg.author;
  return img;
}

export function cloneImage(img: WorkingImage): WorkingImage {
  return {
    ...img,
    config: structuredClone(img.config),
    rootfs: { type: "layers", diff_ids: [...img.rootfs.diff_ids] },
    history: img.history.map((h) => ({ ...h })),
    extra: structuredClone(img.extra),
  };
}

/** The final config document (member order fixed, so its JSON is stable). */
export function toImageConfig(img: WorkingImage): ImageConfig {
  const out: Record<string, unknown> = {};
  if (img.author !== undefined) out.author = img.author;
  out.architecture = img.architecture;
  out.os = img.os;
  if (img.variant) out.variant = img.variant;
  Object.assign(out, img.extra);
  out.config = img.config;
  out.rootfs = img.rootfs;
  out.history = img.history;
  return out as unknown as ImageConfig;
}

/** Sets K=V in an env list, replacing an existing K in place (BuildKit's addEnv). */
export function addEnv(env: readonly string[] | undefined, k: string, v: string): string[] {
  const out = [...(env ?? [])];
  for (let i = 0; i < out.length; i++) {
    const e = out[i]!;
    const eq = e.indexOf("=");
    const key = eq < 0 ? e : e.slice(0, eq);
    if (key === k) {
      out[i] = `${k}=${v}`;
      return out;
    }
  }
  out.push(`${k}=${v}`);
  return out;
}

export function envGet(env: readonly string[] | undefined, k: string): string | undefined {
  for (const e of env ?? []) {
    const eq = e.indexOf("=");
    if ((eq < 0 ? e : e.slice(0, eq)) === k) return eq < 0 ? "" : e.slice(eq + 1);
  }
  return undefined;
}

/** Appends a history entry; `buildkit` marks entries of ops that ran (` # buildkit`). */
export function commitToHistory(
  img: WorkingImage,
  msg: string,
  withLayer: boolean,
  ranOp: boolean,
  epoch: number | undefined,
): void {
  const entry: HistoryEntry = {
    created_by: ranOp ? `${msg} # buildkit` : msg,
    comment: HISTORY_COMMENT,
  };
  if (epoch !== undefined) entry.created = new Date(epoch * 1000).toISOString().replace(".000Z", "Z");
  if (!withLayer) entry.empty_layer = true;
  img.history.push(entry);
}
