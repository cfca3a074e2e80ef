// The per-stage state of a conversion (BuildKit's dispatchState) and the stage graph: stages by
// name and index, the images `COPY --from` and `RUN --mount from=` name without a stage
// ("unregistered" states), what the target reaches, and dependency cycles.
import { type State, scratch } from "../../../llb/builder.js";
import type { Platform } from "../../../oci/platform.js";
import type { SourceLocation, Stage, StageInstruction } from "../instructions/types.js";
import { emptyImage, type WorkingImage } from "./image-config.js";
import type { NamedContextSpec } from "./types.js";

export interface ArgInfo {
  readonly key: string;
  readonly value: string | undefined;
  readonly description: string;
  readonly deps: Set<string>;
  readonly location: SourceLocation;
}

export interface SecretInfo {
  readonly required: boolean;
  readonly location: SourceLocation;
}

/** What `--call=outline` reports, captured while converting (BuildKit's outlineCapture). */
export class OutlineCapture {
  constructor(
    readonly allArgs = new Map<string, ArgInfo>(),
    readonly usedArgs = new Set<string>(),
    readonly secrets = new Map<string, SecretInfo>(),
    readonly ssh = new Map<string, SecretInfo>(),
  ) {}

  clone(): OutlineCapture {
    return new OutlineCapture(
      new Map(this.allArgs),
      new Set(this.usedArgs),
      new Map(this.secrets),
      new Map(this.ssh),
    );
  }

  markAllUsed(keys: Iterable<string>, visited = new Set<string>()): void {
    for (const k of keys) {
      if (visited.has(k)) continue;
      visited.add(k);
      const a = this.allArgs.get(k);
      if (a) this.markAllUsed(a.deps, visited);
      this.usedArgs.add(k);
    }
  }
}

/** A stage instruction with the states it reads from (COPY --from, RUN --mount from=). */
export interface Command {
  readonly instr: StageInstruction;
  /** One per RUN mount (in order), or the COPY --from source. */
  readonly sources: (DispatchState | undefined)[];
  readonly isOnBuild: boolean;
}

export interface UsedOnce {
  location?: SourceLocation;
  isSet: boolean;
}

export interface BuildArg {
  readonly key: string;
  readonly value: string | undefined;
}

export class DispatchState {
  state: State = scratch();
  image: WorkingImage;
  baseImg?: WorkingImage;
  namedContext?: NamedContextSpec;
  platform?: Platform;
  base?: DispatchState;
  dispatched = false;
  resolved = false;
  onBuildInit = false;
  readonly deps = new Map<DispatchState, StageInstruction>();
  buildArgs: BuildArg[] = [];
  commands: Command[] = [];
  /** Paths this stage reads from the main build context. */
  readonly ctxPaths = new Set<string>();
  /** Paths other stages read from this one (shared with the base stage). */
  paths = new Set<string>();
  ignoreCache = false;
  stageName: string;
  cmdIndex = 0;
  cmdIsOnBuild = false;
  cmdTotal = 0;
  outline = new OutlineCapture();
  workdirSet = false;
  readonly entrypoint: UsedOnce = { isSet: false };
  readonly cmd: UsedOnce = { isSet: false };
  readonly healthcheck: UsedOnce = { isSet: false };

  constructor(
    /** The stage, or undefined for an image named by COPY --from / RUN --mount from=. */
    readonly stage: Stage | undefined,
    /** The base image or stage name, ARG-expanded. */
    public baseName: string,
    readonly location: SourceLocation,
    placeholderPlatform: Platform,
  ) {
    this.stageName = stage?.name ?? "";
    this.image = emptyImage(placeholderPlatform);
  }

  get unregistered(): boolean {
    return this.stage === undefined;
  }

  /** The stage's own name ("" when unnamed or unregistered). */
  get name(): string {
    return this.stage?.name ?? "";
  }
}

/** All states, in Dockerfile order, unregistered ones appended as they are found. */
export class DispatchStates {
  readonly states: DispatchState[] = [];
  private readonly byName = new Map<string, DispatchState>();

  names(): string[] {
    return this.states.filter((s) => s.stageName !== "").map((s) => s.stageName);
  }

  add(ds: DispatchState): void {
    this.states.push(ds);
    const base = this.byName.get(ds.baseName);
    if (base) {
      ds.base = base;
      ds.outline = base.outline.clone();
    }
    if (ds.name !== "") this.byName.set(ds.name.toLowerCase(), ds);
  }

  findByName(name: string): DispatchState | undefined {
    return this.byName.get(name.toLowerCase());
  }

  findByIndex(index: number): DispatchState | undefined {
    return index >= 0 && index < this.states.length ? this.states[index] : undefined;
  }

  last(): DispatchState {
    return this.states[this.states.length - 1]!;
  }
}

/** The states `target` needs: its base chain and everything it copies or mounts from. */
export function allReachable(target: DispatchState): Set<DispatchState> {
  const out = new Set<DispatchState>();
  const stack = [target];
  while (stack.length) {
    const s = stack.pop()!;
    if (out.has(s)) continue;
    out.add(s);
    if (s.base) stack.push(s.base);
    for (const d of s.deps.keys()) stack.push(d);
  }
  return out;
}

/** The instructions of a dependency cycle, or undefined (BuildKit's validateCircularDependency). */
export function findCycle(
  states: readonly DispatchState[],
): { state: DispatchState; path: StageInstruction[] } | undefined {
  const visited = new Set<DispatchState>();
  const onPath = new Set<DispatchState>();
  const visit = (s: DispatchState, current: StageInstruction[]): StageInstruction[] | undefined => {
    if (visited.has(s)) return undefined;
    visited.add(s);
    onPath.add(s);
    for (const [dep, c] of s.deps) {
      const next = [...current, c];
      if (onPath.has(dep)) return next;
      const found = visit(dep, next);
      if (found) return found;
    }
    onPath.delete(s);
    return undefined;
  };
  for (const s of states) {
    const path = visit(s, []);
    if (path) return { state: s, path };
  }
  return undefined;
}
