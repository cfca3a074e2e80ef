// Instruction flags (`--name=value`, `--name`), declared per instruction and checked as BuildKit's
// BFlags does: unknown, duplicate, missing or malformed values are errors.
import { goToLower } from "../parser/case.js";
import { DockerfileError, suggestClosest } from "../parser/errors.js";

type FlagType = "bool" | "string" | "strings";

export class Flag {
  value = "";
  stringValues: string[] = [];
  constructor(
    readonly name: string,
    readonly type: FlagType,
  ) {}

  isTrue(): boolean {
    return this.value === "true";
  }
}

export class InstructionFlags {
  private readonly flags = new Map<string, Flag>();
  private readonly used = new Map<string, Flag>();
  /** Names of used flags, in first-use order. */
  private readonly usedOrder: string[] = [];

  /** `instruction` is used in messages (e.g. `COPY`). */
  constructor(
    readonly args: readonly string[],
    readonly instruction: string,
  ) {}

  addBool(name: string, def: boolean): Flag {
    const f = this.add(name, "bool");
    f.value = def ? "true" : "false";
    return f;
  }

  addString(name: string, def: string): Flag {
    const f = this.add(name, "string");
    f.value = def;
    return f;
  }

  addStrings(name: string): Flag {
    return this.add(name, "strings");
  }

  private add(name: string, type: FlagType): Flag {
    if (this.flags.has(name)) throw new Error(`Duplicate flag defined: ${name}`);
    const f = new Flag(name, type);
    this.flags.set(name, f);
    return f;
  }

  isUsed(name: string): boolean {
    return this.used.has(name);
  }

  /** Names of the flags that were given. */
  usedNames(): string[] {
    return [...this.usedOrder];
  }

  /** Checks the given flags against the declared ones. Throws DockerfileError. */
  parse(): void {
    for (const a of this.args) {
      if (a === "--") return; // end of options (POSIX utility syntax)
      if (!a.startsWith("--")) throw new DockerfileError({ message: `arg should start with -- : ${a}` });
      const eq = a.indexOf("=");
      const flagName = eq < 0 ? a : a.slice(0, eq);
      const value = eq < 0 ? "" : a.slice(eq + 1);
      const hasValue = eq >= 0;
      const arg = flagName.slice(2);
      const flag = this.flags.has(arg) ? this.flags.get(arg) : undefined;
      if (!flag) {
        const names = [...this.flags.keys()].sort();
        const match = suggestClosest(arg, names, true);
        const valid =
          names.length === 0
            ? `${this.instruction} takes no flags`
            : `${this.instruction} accepts ${names.map((n) => `--${n}`).join(", ")}`;
        throw new DockerfileError({
          message: `unknown flag: ${flagName}`,
          suggestion: match ? `did you mean ${match}? ${valid}` : valid,
        });
      }
      if (this.used.has(arg) && flag.type !== "strings") {
        throw new DockerfileError({ message: `duplicate flag specified: ${flagName}` });
      }
      if (!this.used.has(arg)) this.usedOrder.push(arg);
      this.used.set(arg, flag);
      switch (flag.type) {
        case "bool":
          if (hasValue && value === "")
            throw new DockerfileError({ message: `missing a value on flag: ${flagName}` });
          switch (goToLower(value)) {
            case "true":
            case "":
              flag.value = "true";
              break;
            case "false":
              flag.value = "false";
              break;
            default:
              throw new DockerfileError({
                message: `expecting boolean value for flag ${flagName}, not: ${value}`,
              });
          }
          break;
        case "string":
          if (!hasValue) throw new DockerfileError({ message: `missing a value on flag: ${flagName}` });
          flag.value = value;
          break;
        case "strings":
          if (!hasValue) throw new DockerfileError({ message: `missing a value on flag: ${flagName}` });
          flag.stringValues.push(value);
          break;
      }
    }
  }
}
