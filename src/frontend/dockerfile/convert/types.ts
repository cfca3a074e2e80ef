// What the Dockerfile → LLB converter takes and gives. The converter is pure computation: what it
// needs from the outside world (base image configs) comes in through `resolveImage`.
import type { State } from "../../../llb/builder.js";
import type { Definition } from "../../../llb/definition.js";
import type { Platform } from "../../../oci/platform.js";
import type { ImageConfig } from "../../../oci/spec.js";
import type { LintConfig, Warning } from "../checks/linter.js";

/** What a named build context (`--build-context NAME=…`) stands for. */
export type NamedContextSpec =
  /** A local directory the client sends, under this session name. */
  | { readonly kind: "local"; readonly name: string }
  /** A registry image. */
  | { readonly kind: "image"; readonly ref: string }
  /** An image in an OCI layout directory (`ref`: `:tag`, `@sha256:…`, or a bare tag). */
  | { readonly kind: "oci-layout"; readonly path: string; readonly ref?: string }
  /** A git repository or an http(s) file. */
  | { readonly kind: "url"; readonly url: string }
  /**
   * Another build target's result (Bake's `target:NAME`); the engine builds it first and passes
   * its state and image config.
   */
  | {
      readonly kind: "target";
      readonly target: string;
      readonly state?: State;
      readonly config?: ImageConfig;
    };

export interface ResolvedImage {
  /** The reference pinned to a digest: `docker.io/library/busybox:latest@sha256:…`. */
  readonly ref: string;
  readonly config: ImageConfig;
}

/** Looks up an image's config for a platform (the engine's registry/cache client). */
export type ResolveImageFn = (ref: string, platform: Platform) => Promise<ResolvedImage>;

export interface ConvertOptions {
  /** The Dockerfile's name in errors and warnings; default `Dockerfile`. */
  readonly filename?: string;
  /** The stage to build; default the last. */
  readonly target?: string;
  readonly buildArgs?: Readonly<Record<string, string>>;
  /** The engine's platform (BUILDPLATFORM); default the target platform, else this host's. */
  readonly buildPlatform?: Platform;
  /** The platform to build for (TARGETPLATFORM); default the build platform. */
  readonly targetPlatform?: Platform;
  /** Several platforms are being built: progress names carry the platform. */
  readonly multiPlatform?: boolean;
  /** Labels added to the result's config (`--label`). */
  readonly labels?: Readonly<Record<string, string>>;
  readonly namedContexts?: Readonly<Record<string, NamedContextSpec>>;
  /**
   * The main build context when it is not the client's directory (a git repository checked out by
   * the engine); `contextName` then names nothing.
   */
  readonly mainContext?: State;
  /** The main context's local source name; default `context`. */
  readonly contextName?: string;
  /** .dockerignore patterns of the main context (for the exclude attr and CopyIgnoredFile). */
  readonly dockerignore?: readonly string[];
  /** Stages whose ops must not come from the cache (`--no-cache-filter`); `true` = all. */
  readonly noCacheStages?: readonly string[] | true;
  readonly resolveImage?: ResolveImageFn;
  /** `--add-host`. */
  readonly extraHosts?: readonly { readonly host: string; readonly ip: string }[];
  /** `--shm-size` in bytes: a tmpfs at /dev/shm for every RUN. */
  readonly shmSize?: number;
  readonly ulimits?: readonly { readonly name: string; readonly soft: number; readonly hard: number }[];
  readonly cgroupParent?: string;
  readonly hostname?: string;
  /** `--network` for every RUN that does not set its own. */
  readonly network?: "default" | "none" | "host";
  /** Prefix of cache mount ids (BuildKit's cache-id namespace). */
  readonly cacheIdNamespace?: string;
  /** Overrides the `# check=` directive. */
  readonly lintConfig?: LintConfig;
  /** Dispatch every stage, not only the ones the target needs (lint mode). */
  readonly allStages?: boolean;
}

export interface StageInfo {
  /** The stage name (`stage-N` when unnamed). */
  readonly name: string;
  readonly index: number;
  /** The base (image or stage) after ARG expansion. */
  readonly base: string;
  readonly platform?: Platform;
  /** Whether the target needs it (only those produce ops). */
  readonly reachable: boolean;
  /** Names of the stages it copies or mounts from, or builds on. */
  readonly dependsOn: readonly string[];
  /** The stage's instructions' line range. */
  readonly location: { readonly startLine: number; readonly endLine: number };
}

export interface ConvertResult {
  readonly definition: Definition;
  /** The target's final state (for callers that build more on it). */
  readonly state: State;
  /** The image config of the target stage. */
  readonly imageConfig: ImageConfig;
  /** The config of the image the target is based on, if it is an image. */
  readonly baseImageConfig?: ImageConfig;
  readonly stages: readonly StageInfo[];
  readonly target: string;
  readonly warnings: readonly Warning[];
  /** SOURCE_DATE_EPOCH, when set. */
  readonly epoch?: number;
  /** The target or one of its stages is not to be cached. */
  readonly ignoreCache: boolean;
}
