// Build checks (`--check`, `--call=check`): BuildKit's linter rules run over a Dockerfile without
// building it. Every stage is looked at unless a target is given, as BuildKit's lint does.

import { Converter, prepare } from "../convert/convert.js";
import type { ConvertOptions } from "../convert/types.js";
import { DockerfileError } from "../parser/errors.js";
import type { Warning } from "./linter.js";

export { listTargets, type Outline, outline, type Target } from "../convert/outline.js";
export { type LintConfig, Linter, parseLintOptions, type Warning } from "./linter.js";
export { ALL_RULES, type LintRule, type RuleName, Rules, ruleByName } from "./rules.js";

export interface CheckReport {
  readonly warnings: readonly Warning[];
  /** What stops the Dockerfile from building (a parse error, a bad stage reference, `error=true`). */
  readonly error?: DockerfileError;
}

function asDockerfileError(e: unknown, fileName: string): DockerfileError {
  if (e instanceof DockerfileError) return e;
  if (e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError) throw e;
  return new DockerfileError({ message: e instanceof Error ? e.message : String(e), fileName, cause: e });
}

/** Runs the checks; the warnings and the error that would stop a build, if any. */
export async function checkDockerfileReport(text: string, opts: ConvertOptions = {}): Promise<CheckReport> {
  const o: ConvertOptions = { ...opts, allStages: !opts.target };
  const fileName = opts.filename ?? "Dockerfile";
  let prepared: ReturnType<typeof prepare>;
  try {
    prepared = prepare(text, o);
  } catch (e) {
    return { warnings: [], error: asDockerfileError(e, fileName) };
  }
  let error: DockerfileError | undefined;
  try {
    await new Converter(prepared, o).toDispatchState();
    error = prepared.lint.error();
  } catch (e) {
    error = asDockerfileError(e, fileName);
  }
  return { warnings: [...prepared.lint.warnings], ...(error ? { error } : {}) };
}

/** The build-check warnings of a Dockerfile, in the order they were found. */
export async function checkDockerfile(text: string, opts: ConvertOptions = {}): Promise<Warning[]> {
  return [...(await checkDockerfileReport(text, opts)).warnings];
}
