// The live terminal display: a redrawn list of steps with timers, cached marks and the last log
// lines of running steps, like BuildKit's tty display.
import type { Digest } from "../../src/oci/digest.js";
import type { ProgressEvent } from "../../src/solver/progress.js";
import type { ProgressRenderer } from "./renderer.js";

interface Step {
  readonly name: string;
  started?: number;
  completed?: number;
  cached: boolean;
  error?: string;
  logs: string[];
}

const LOG_LINES_SHOWN = 6;
const REDRAW_MS = 100;

export class TtyProgress implements ProgressRenderer {
  private readonly steps = new Map<Digest, Step>();
  private readonly started = Date.now();
  private linesDrawn = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly out: NodeJS.WriteStream) {
    this.timer = setInterval(() => this.draw(), REDRAW_MS);
  }

  handle(e: ProgressEvent): void {
    if (e.type === "vertex") {
      let s = this.steps.get(e.vertex);
      if (!s) {
        s = { name: e.name, cached: false, logs: [] };
        this.steps.set(e.vertex, s);
      }
      s.started ??= e.started;
      if (e.completed !== undefined) s.completed = e.completed;
      if (e.cached) s.cached = true;
      if (e.error !== undefined) s.error = e.error;
    } else if (e.type === "log") {
      const s = this.steps.get(e.vertex);
      if (!s) return;
      const lines = e.data
        .toString("utf8")
        .split("\n")
        .filter((l) => l.length > 0);
      s.logs.push(...lines);
      if (s.logs.length > LOG_LINES_SHOWN) s.logs.splice(0, s.logs.length - LOG_LINES_SHOWN);
    }
  }

  private render(final: boolean): string[] {
    const now = Date.now();
    const width = Math.max(40, this.out.columns ?? 80);
    const done = [...this.steps.values()].filter((s) => s.completed !== undefined).length;
    const state = final ? "FINISHED" : "Building";
    const lines = [
      `[+] ${state} ${((now - this.started) / 1000).toFixed(1)}s (${done}/${this.steps.size})${final ? "" : ""}`,
    ];
    for (const s of this.steps.values()) {
      if (s.started === undefined) continue;
      const t = (((s.completed ?? now) - s.started) / 1000).toFixed(1);
      const mark = s.cached ? "CACHED" : s.error !== undefined ? "ERROR" : `${t}s`;
      const prefix = s.completed === undefined ? " => " : " => ";
      const name = `${prefix}${s.name}`;
      const pad = Math.max(1, width - name.length - mark.length - 1);
      lines.push(`${name.slice(0, width - mark.length - 2)}${" ".repeat(pad)}${mark}`);
      if (s.completed === undefined || s.error !== undefined) {
        for (const l of s.logs) lines.push(` => => # ${l}`.slice(0, width - 1));
      }
    }
    return lines;
  }

  private draw(final = false): void {
    const lines = this.render(final);
    let text = "";
    if (this.linesDrawn > 0) text += `\x1b[${this.linesDrawn}A`;
    for (const l of lines) text += `\x1b[2K${l}\n`;
    this.out.write(text);
    this.linesDrawn = lines.length;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.draw(true);
  }
}
