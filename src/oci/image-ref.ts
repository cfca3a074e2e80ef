// Image references (`name[:tag][@digest]`) with Docker's normalisation (`busybox` → docker.io/library/busybox:latest).
import { type Digest, parseDigest } from "./digest.js";

export interface ImageRef {
  /** Registry host[:port], e.g. `docker.io`, `127.0.0.1:5000`. */
  readonly registry: string;
  /** Repository path inside the registry, e.g. `library/busybox`. */
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: Digest;
}

export const DOCKER_HUB = "docker.io";

const TAG_RE = /^[\w][\w.-]{0,127}$/;
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/** Parses and normalises a reference; throws an error that names the reference when it is invalid. */
export function parseImageRef(input: string): ImageRef {
  const s = input.trim();
  const fail = (why: string): never => {
    throw new Error(`invalid image reference ${JSON.stringify(input)}: ${why}`);
  };
  if (s === "") fail("empty");
  let rest = s;
  let digest: Digest | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    try {
      digest = parseDigest(rest.slice(at + 1));
    } catch {
      fail("the part after @ is not a digest");
    }
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) fail(`invalid tag ${JSON.stringify(tag)}`);
  }
  let registry = DOCKER_HUB;
  let repository = rest;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes(".") || first.includes(":") || first === "localhost") {
      registry = first;
      repository = rest.slice(slash + 1);
    }
  }
  if (registry === "index.docker.io" || registry === "registry-1.docker.io") registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !repository.includes("/")) repository = `library/${repository}`;
  if (repository === "") fail("missing repository name");
  for (const comp of repository.split("/")) {
    if (!PATH_COMPONENT_RE.test(comp))
      fail(`invalid repository name component ${JSON.stringify(comp)} (must be lowercase)`);
  }
  if (!tag && !digest) tag = "latest";
  return { registry, repository, tag, digest };
}

/** The canonical string: `docker.io/library/busybox:latest`, `host:5000/app@sha256:…`. */
export function formatImageRef(r: ImageRef): string {
  let s = `${r.registry}/${r.repository}`;
  if (r.tag) s += `:${r.tag}`;
  if (r.digest) s += `@${r.digest}`;
  return s;
}

/** The familiar short form Docker prints: `busybox:latest` for Hub's library images. */
export function familiarImageRef(r: ImageRef): string {
  let name = `${r.registry}/${r.repository}`;
  if (r.registry === DOCKER_HUB)
    name = r.repository.startsWith("library/") ? r.repository.slice(8) : r.repository;
  if (r.tag) name += `:${r.tag}`;
  if (r.digest) name += `@${r.digest}`;
  return name;
}

export function withDigest(r: ImageRef, digest: Digest): ImageRef {
  return { ...r, digest };
}

export function withTag(r: ImageRef, tag: string): ImageRef {
  return { registry: r.registry, repository: r.repository, tag };
}
