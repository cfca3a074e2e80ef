// What a client asks an engine to build: the typed form of `kiln build`'s flags.
import type { Platform } from "../oci/platform.js";

export type OutputSpec =
  | {
      readonly type: "image";
      readonly names: readonly string[];
      readonly push: boolean;
      readonly attrs: Readonly<Record<string, string>>;
    }
  | {
      readonly type: "oci" | "docker";
      readonly dest?: string;
      readonly tar: boolean;
      readonly names: readonly string[];
      readonly attrs: Readonly<Record<string, string>>;
    }
  | {
      readonly type: "local" | "tar";
      readonly dest: string;
      readonly attrs: Readonly<Record<string, string>>;
    };

export interface CacheSpec {
  readonly type: string;
  readonly attrs: Readonly<Record<string, string>>;
}

export interface SecretSpec {
  readonly id: string;
  readonly source:
    | { readonly kind: "file"; readonly path: string }
    | { readonly kind: "env"; readonly name: string };
}

export interface SshSpec {
  readonly id: string;
  /** Agent sockets or key files; empty = $SSH_AUTH_SOCK. */
  readonly paths: readonly string[];
}

export type NamedContext =
  | { readonly kind: "local"; readonly path: string }
  | { readonly kind: "image"; readonly ref: string }
  | { readonly kind: "oci-layout"; readonly path: string; readonly ref?: string }
  | { readonly kind: "url"; readonly url: string }
  | { readonly kind: "target"; readonly target: string };

export type CallKind = "build" | "check" | "outline" | "targets";
export type ProgressMode = "auto" | "tty" | "plain" | "rawjson" | "quiet" | "none";

export interface BuildRequest {
  /**
   * A directory; `-` (stdin: a tar the client unpacks and sends as the `context` directory, or a
   * Dockerfile with an empty context); or a git URL (`https://host/repo.git#ref:subdir`, `git@…`,
   * `ssh://…`, `git://…`) that the engine fetches itself.
   */
  readonly contextPath: string;
  /** `-f`: a client path; inside the archive for a stdin tar; relative to the subdir for a git URL. */
  readonly dockerfilePath?: string;
  /**
   * The Dockerfile's text, read by the client (from `-f`, `-f -` or CONTEXT/Dockerfile) before
   * sending; left unset for a git context, whose Dockerfile the engine reads from the checkout.
   */
  readonly dockerfileText?: string;
  /** The Dockerfile's name as errors show it (`Dockerfile`, `build/app.Dockerfile`). */
  readonly dockerfileName?: string;
  /** The context's ignore patterns (`<Dockerfile>.dockerignore` or `.dockerignore`), read by the client. */
  readonly dockerignore?: readonly string[];
  readonly tags: readonly string[];
  readonly buildArgs: Readonly<Record<string, string>>;
  readonly buildContexts: Readonly<Record<string, NamedContext>>;
  readonly target?: string;
  readonly platforms: readonly Platform[];
  readonly outputs: readonly OutputSpec[];
  readonly noCache: boolean;
  readonly noCacheFilter: readonly string[];
  readonly pull: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly network?: "default" | "none" | "host";
  readonly addHosts: readonly { readonly host: string; readonly ip: string }[];
  readonly allow: readonly string[];
  readonly secrets: readonly SecretSpec[];
  readonly ssh: readonly SshSpec[];
  readonly cacheFrom: readonly CacheSpec[];
  readonly cacheTo: readonly CacheSpec[];
  readonly call: CallKind;
  readonly annotations: readonly string[];
  readonly shmSize?: number;
  readonly ulimits: readonly { readonly name: string; readonly soft: number; readonly hard: number }[];
  readonly cgroupParent?: string;
}

/** A request with Buildx's defaults for everything not given. */
export function newBuildRequest(contextPath: string, given: Partial<BuildRequest> = {}): BuildRequest {
  return {
    contextPath,
    tags: [],
    buildArgs: {},
    buildContexts: {},
    platforms: [],
    outputs: [],
    noCache: false,
    noCacheFilter: [],
    pull: false,
    labels: {},
    addHosts: [],
    allow: [],
    secrets: [],
    ssh: [],
    cacheFrom: [],
    cacheTo: [],
    call: "build",
    annotations: [],
    ulimits: [],
    ...given,
  };
}
