// Progress renderers consume the engine's event stream; `--progress` picks one.
import type { ProgressMode } from "../../src/client/build-request.js";
import type { ProgressEvent } from "../../src/solver/progress.js";
import { PlainProgress } from "./plain.js";

export interface ProgressRenderer {
  handle(event: ProgressEvent): void;
  close(): Promise<void>;
}

/** `rawjson`: one JSON object per event, log data base64 as BuildKit's rawjson does. */
class RawJsonProgress implements ProgressRenderer {
  constructor(private readonly out: NodeJS.WritableStream) {}
  handle(e: ProgressEvent): void {
    const json = e.type === "log" ? { ...e, data: e.data.toString("base64") } : e;
    this.out.write(`${JSON.stringify(json)}\n`);
  }
  async close(): Promise<void> {}
}

/** `quiet`/`none`: nothing during the build; errors still reach the user through the build's result. */
class SilentProgress implements ProgressRenderer {
  handle(): void {}
  async close(): Promise<void> {}
}

export async function createProgressRenderer(
  mode: ProgressMode,
  out: NodeJS.WriteStream,
): Promise<ProgressRenderer> {
  const resolved = mode === "auto" ? (out.isTTY ? "tty" : "plain") : mode;
  switch (resolved) {
    case "tty": {
      const { TtyProgress } = await import("./tty.js");
      return new TtyProgress(out);
    }
    case "plain":
      return new PlainProgress(out);
    case "rawjson":
      return new RawJsonProgress(out);
    default:
      return new SilentProgress();
  }
}
