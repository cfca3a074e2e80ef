// `--call=outline` and `--call=targets` (BuildKit's outline.go and ListTargets): the build args,
// secrets and ssh sockets a target uses, with their doc comments; the stages one can build.
import type { Platform } from "../../../oci/platform.js";
import { parseInstructions } from "../instructions/parse.js";
import type { SourceLocation } from "../instructions/types.js";
import { parseDockerfile } from "../parser/parser.js";
import { Converter, prepare } from "./convert.js";
import type { DispatchState } from "./stage-graph.js";
import type { ConvertOptions } from "./types.js";

export interface OutlineArg {
  readonly name: string;
  /** The value the build would use (default or --build-arg); undefined when it has none. */
  readonly value?: string;
  readonly description: string;
  readonly location: SourceLocation;
}

export interface OutlineSecret {
  readonly name: string;
  readonly required: boolean;
  readonly location: SourceLocation;
}

export interface Outline {
  /** The target stage's name ("" when unnamed). */
  readonly name: string;
  readonly description: string;
  readonly args: readonly OutlineArg[];
  readonly secrets: readonly OutlineSecret[];
  readonly ssh: readonly OutlineSecret[];
}

export interface Target {
  readonly name: string;
  readonly description: string;
  /** The last stage: what a build without --target builds. */
  readonly default: boolean;
  /** The base image or stage as written. */
  readonly base: string;
  /** `--platform` as written. */
  readonly platform?: string;
  readonly location: SourceLocation;
}

function collectArgs(ds: DispatchState, visited: Set<string>, seen = new Set<DispatchState>()): OutlineArg[] {
  if (seen.has(ds)) return [];
  seen.add(ds);
  ds.outline.markAllUsed([...ds.outline.usedArgs]);
  const out: OutlineArg[] = [];
  for (const k of ds.outline.usedArgs) {
    const a = ds.outline.allArgs.get(k);
    if (!a || visited.has(k)) continue;
    out.push({
      name: a.key,
      ...(a.value !== undefined ? { value: a.value } : {}),
      description: a.description,
      location: a.location,
    });
    visited.add(k);
  }
  if (ds.base) out.push(...collectArgs(ds.base, visited, seen));
  for (const d of ds.deps.keys()) out.push(...collectArgs(d, visited, seen));
  return out;
}

function collectSecrets(
  ds: DispatchState,
  kind: "secrets" | "ssh",
  visited: Set<string>,
  seen = new Set<DispatchState>(),
): OutlineSecret[] {
  if (seen.has(ds)) return [];
  seen.add(ds);
  const out: OutlineSecret[] = [];
  for (const [k, v] of ds.outline[kind]) {
    if (visited.has(k)) continue;
    out.push({ name: k, required: v.required, location: v.location });
    visited.add(k);
  }
  if (ds.base) out.push(...collectSecrets(ds.base, kind, visited, seen));
  for (const d of ds.deps.keys()) out.push(...collectSecrets(d, kind, visited, seen));
  return out;
}

const byLine = (a: { location: SourceLocation }, b: { location: SourceLocation }) =>
  a.location.startLine - b.location.startLine;

/** The outline of the target (default: the last stage). */
export async function outline(text: string, opts: ConvertOptions = {}): Promise<Outline> {
  const conv = new Converter(prepare(text, opts), opts);
  const target = await conv.toDispatchState();
  return {
    name: target.name,
    description: target.stage?.from.docComment ?? "",
    args: collectArgs(target, new Set()).sort(byLine),
    secrets: collectSecrets(target, "secrets", new Set()).sort(byLine),
    ssh: collectSecrets(target, "ssh", new Set()).sort(byLine),
  };
}

/** The stages of a Dockerfile, for `--call=targets`. */
export function listTargets(text: string, opts: { filename?: string } = {}): Target[] {
  const parse = parseDockerfile(text, { fileName: opts.filename });
  const { stages } = parseInstructions(parse);
  return stages.map((s, i) => ({
    name: s.name,
    description: s.from.docComment,
    default: i === stages.length - 1,
    base: s.from.image,
    ...(s.from.platform !== undefined ? { platform: s.from.platform } : {}),
    location: s.from.location,
  }));
}

export type { Platform };
