// The build-check runner (BuildKit's linter.Linter): which rules are on (`# check=skip=…`,
// `experimental=…`), collecting warnings, and turning them into an error with `error=true`.
import { DockerfileError } from "../parser/errors.js";
import type { LintRule } from "./rules.js";

/** A build-check finding, as `docker build --check` reports it. */
export interface Warning {
  /** The rule name, e.g. `UndefinedVar`. */
  readonly rule: string;
  readonly description: string;
  readonly url: string;
  /** The finding, e.g. `Usage of undefined variable '$foo'`. */
  readonly message: string;
  readonly location: { readonly file: string; readonly startLine: number; readonly endLine: number };
  readonly experimental?: boolean;
}

export interface LintConfig {
  readonly skipAll?: boolean;
  readonly skipRules?: readonly string[];
  readonly experimentalAll?: boolean;
  readonly experimentalRules?: readonly string[];
  /** `error=true`: warnings fail the build. */
  readonly returnAsError?: boolean;
}

/** Parses a `check` directive value: `skip=A,B|all;error=true;experimental=X|all`. */
export function parseLintOptions(checkStr: string | undefined): LintConfig {
  const s = (checkStr ?? "").trim();
  if (s === "") return {};
  // Go's strings.SplitN(s, ";", 3)
  const parts: string[] = [];
  let rest = s;
  while (parts.length < 2) {
    const i = rest.indexOf(";");
    if (i < 0) break;
    parts.push(rest.slice(0, i));
    rest = rest.slice(i + 1);
  }
  parts.push(rest);
  let skipRules: string[] | undefined;
  let experimentalRules: string[] | undefined;
  let skipAll = false;
  let experimentalAll = false;
  let returnAsError = false;
  for (const p of parts) {
    const eq = p.indexOf("=");
    if (eq < 0) throw new Error(`invalid check option ${JSON.stringify(p)}`);
    const k = p.slice(0, eq).trim();
    const v = p.slice(eq + 1).trim();
    switch (k) {
      case "skip":
        if (v === "all") skipAll = true;
        else skipRules = v.split(",").map((r) => r.trim());
        break;
      case "experimental":
        if (v === "all") experimentalAll = true;
        else experimentalRules = v.split(",").map((r) => r.trim());
        break;
      case "error": {
        const b = parseGoBool(v);
        if (b === undefined)
          throw new Error(
            `failed to parse check option ${JSON.stringify(p)}: strconv.ParseBool: parsing ${JSON.stringify(v)}: invalid syntax`,
          );
        returnAsError = b;
        break;
      }
      default:
        throw new Error(`invalid check option ${JSON.stringify(k)}`);
    }
  }
  return { skipAll, skipRules, experimentalAll, experimentalRules, returnAsError };
}

function parseGoBool(s: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(s)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(s)) return false;
  return undefined;
}

interface LinterState {
  readonly sink: Warning[];
  readonly called: string[];
}

export class Linter {
  private constructor(
    private readonly config: Required<LintConfig>,
    private readonly state: LinterState,
    readonly fileName: string,
  ) {}

  static create(config: LintConfig, fileName: string): Linter {
    return new Linter(
      {
        skipAll: !!config.skipAll,
        skipRules: config.skipRules ?? [],
        experimentalAll: !!config.experimentalAll,
        experimentalRules: config.experimentalRules ?? [],
        returnAsError: !!config.returnAsError,
      },
      { sink: [], called: [] },
      fileName,
    );
  }

  get warnings(): readonly Warning[] {
    return this.state.sink;
  }

  /** Reports a finding of `rule` unless the configuration turns the rule off. */
  run(rule: LintRule<never[]>, location: { startLine: number; endLine: number }, message?: string): void {
    if (rule.deprecated) return;
    const c = this.config;
    if (rule.experimental) {
      if (!c.experimentalAll && !c.experimentalRules.includes(rule.name)) return;
    } else if (c.skipAll || c.skipRules.includes(rule.name)) return;
    this.state.called.push(rule.name);
    this.state.sink.push({
      rule: rule.name,
      description: rule.description,
      url: rule.url,
      message: message ?? rule.description,
      location: { file: this.fileName, startLine: location.startLine, endLine: location.endLine },
      ...(rule.experimental ? { experimental: true } : {}),
    });
  }

  withMergedConfig(other: LintConfig): Linter {
    const c = this.config;
    return new Linter(
      {
        skipAll: c.skipAll || !!other.skipAll,
        skipRules: [...c.skipRules, ...(other.skipRules ?? [])],
        experimentalAll: c.experimentalAll || !!other.experimentalAll,
        experimentalRules: [...c.experimentalRules, ...(other.experimentalRules ?? [])],
        returnAsError: c.returnAsError,
      },
      this.state,
      this.fileName,
    );
  }

  /** Honours a `# check=…` comment directly above an instruction. */
  withMergedConfigFromComments(comments: readonly string[] | undefined): Linter {
    if (!comments?.length) return this;
    for (const comment of comments) {
      const m = /^\s*check\s*=\s*(.*)$/i.exec(comment);
      if (!m) continue;
      const v = m[1]!.split(" ")[0]!;
      try {
        return this.withMergedConfig(parseLintOptions(v));
      } catch {
        return this;
      }
    }
    return this;
  }

  /** With `error=true`: the error that fails the build when any rule fired. */
  error(): DockerfileError | undefined {
    if (!this.config.returnAsError || this.state.called.length === 0) return undefined;
    const rules = [...new Set(this.state.called)];
    return new DockerfileError({
      message: `lint violation found for rules: ${rules.join(", ")}`,
      fileName: this.fileName,
    });
  }
}
