// A failed build step as BuildKit reports it: the step, the last lines it printed, the Dockerfile
// excerpt around the instruction, and the cause — one message that every client prints as is.
import type { Definition } from "../llb/definition.js";
import type { ProgressEvent } from "../solver/progress.js";
import { VertexError } from "../solver/solver.js";

const LOG_TAIL_LINES = 10;

export class BuildStepError extends Error {
  override name = "BuildStepError";
}

/** Keeps the last lines each vertex printed, to show them when it fails. */
export class LogTails {
  private readonly tails = new Map<string, string[]>();

  record(e: ProgressEvent): void {
    if (e.type !== "log") return;
    const lines = this.tails.get(e.vertex) ?? [];
    lines.push(
      ...e.data
        .toString("utf8")
        .split("\n")
        .filter((l) => l.length > 0),
    );
    if (lines.length > LOG_TAIL_LINES) lines.splice(0, lines.length - LOG_TAIL_LINES);
    this.tails.set(e.vertex, lines);
  }

  of(vertex: string): readonly string[] {
    return this.tails.get(vertex) ?? [];
  }
}

export function describeStepFailure(
  err: unknown,
  defs: readonly Definition[],
  dockerfile: { name: string; text: string },
  logs: LogTails,
): Error {
  if (!(err instanceof VertexError)) return err instanceof Error ? err : new Error(String(err));
  const cause = err.cause instanceof Error ? err.cause.message : String(err.cause);
  let out = `------\n > ${err.vertexName}:\n`;
  for (const l of logs.of(err.vertex)) out += `${l}\n`;
  out += "------\n";
  const md = defs.map((d) => d.metadata.get(err.vertex)).find((m) => m?.locations?.length);
  const loc = md?.locations?.[0];
  if (loc) {
    const lines = dockerfile.text.split("\n");
    out += `${dockerfile.name}:${loc.startLine}\n--------------------\n`;
    const from = Math.max(1, loc.startLine - 4);
    const to = Math.min(lines.length, loc.endLine + 2);
    for (let i = from; i <= to; i++) {
      const mark = i >= loc.startLine && i <= loc.endLine ? ">>>" : "   ";
      out += ` ${String(i).padStart(3)} | ${mark} ${lines[i - 1] ?? ""}\n`;
    }
    out += "--------------------\n";
  }
  out += `failed to solve: ${cause}`;
  return new BuildStepError(out);
}
