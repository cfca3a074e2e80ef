// Real git servers on 127.0.0.1 for git-source tests: repositories built with the git CLI, served
// over HTTP by `git http-backend` (CGI, driven by a small node server that logs what each request
// asked for) and over SSH by a private sshd with generated host and client keys (sshd.ts); plus a
// real ssh-agent holding the client key.
import { execFile, spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { devNull } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { gunzipSync } from "node:zlib";

const execFileAsync = promisify(execFile);

/** Runs git for test fixtures with a fixed identity and no host configuration. */
export async function git(
  cwd: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<string> {
  const { stdout } = await execFileAsync("git", [...args], {
    cwd,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: devNull,
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_CONFIG_GLOBAL: devNull,
      GIT_AUTHOR_NAME: "Test",
      GIT_AUTHOR_EMAIL: "test@example.invalid",
      GIT_COMMITTER_NAME: "Test",
      GIT_COMMITTER_EMAIL: "test@example.invalid",
      ...env,
    },
  });
  return stdout;
}

/** A working repository used as a remote (served as `<name>`; git finds its `.git`). */
export class TestRepo {
  private constructor(readonly dir: string) {}

  static async init(dir: string, branch = "main"): Promise<TestRepo> {
    await mkdir(dir, { recursive: true });
    await git(dir, ["init", "--quiet", "-b", branch]);
    return new TestRepo(dir);
  }

  async write(files: Record<string, string>): Promise<void> {
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(this.dir, path)), { recursive: true });
      await writeFile(join(this.dir, path), content);
    }
  }

  /** Commits everything; `date` fixes the author and committer time. Returns the commit id. */
  async commit(message: string, date?: Date): Promise<string> {
    const env: Record<string, string> = date
      ? { GIT_AUTHOR_DATE: date.toISOString(), GIT_COMMITTER_DATE: date.toISOString() }
      : {};
    await git(this.dir, ["add", "-A"]);
    await git(this.dir, ["commit", "--quiet", "--allow-empty", "-m", message], env);
    return this.head();
  }

  async head(): Promise<string> {
    return (await git(this.dir, ["rev-parse", "HEAD"])).trim();
  }

  async tag(name: string, message?: string): Promise<void> {
    await git(this.dir, message ? ["tag", "-a", name, "-m", message] : ["tag", name]);
  }

  async run(args: readonly string[]): Promise<string> {
    return git(this.dir, args);
  }
}

export interface GitRequest {
  readonly method: string;
  readonly path: string;
  /** `git-upload-pack` for a ref advertisement or pack request. */
  readonly service?: string;
  /** The protocol-v2 command of a POST: `ls-refs` or `fetch`. */
  readonly command?: string;
  readonly status: number;
}

/** Repositories under `root` served over HTTP by `git http-backend`. */
export class GitHttpServer {
  readonly requests: GitRequest[] = [];
  /** When set, requests without exactly this Authorization header get 401. */
  requiredAuthorization: string | undefined;

  private constructor(
    private readonly server: Server,
    readonly root: string,
    readonly origin: string,
  ) {}

  static async start(root: string): Promise<GitHttpServer> {
    const server = createHttpServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const s = new GitHttpServer(server, root, `http://127.0.0.1:${port}`);
    server.on("request", (req, res) => {
      s.handle(req, res).catch((e: Error) => {
        res.writeHead(500);
        res.end(String(e.message));
      });
    });
    return s;
  }

  url(repoPath: string): string {
    return `${this.origin}/${repoPath}`;
  }

  /** How many pack fetches (protocol-v2 `fetch` commands) the server has answered. */
  fetches(): number {
    return this.requests.filter((r) => r.command === "fetch").length;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.origin);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const log = (status: number) => {
      let command: string | undefined;
      if (req.method === "POST") {
        let text = body;
        if (req.headers["content-encoding"] === "gzip") text = gunzipSync(body);
        command = /command=([a-z-]+)/.exec(text.toString("latin1"))?.[1];
      }
      this.requests.push({
        method: req.method ?? "",
        path: url.pathname,
        service:
          url.searchParams.get("service") ??
          (url.pathname.endsWith("/git-upload-pack") ? "git-upload-pack" : undefined),
        command,
        status,
      });
    };
    if (
      this.requiredAuthorization !== undefined &&
      req.headers.authorization !== this.requiredAuthorization
    ) {
      log(401);
      res.writeHead(401, { "WWW-Authenticate": 'Basic realm="git"' });
      res.end();
      return;
    }
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: devNull,
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_CONFIG_GLOBAL: devNull,
      GIT_PROJECT_ROOT: this.root,
      GIT_HTTP_EXPORT_ALL: "1",
      REQUEST_METHOD: req.method ?? "GET",
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      REMOTE_ADDR: "127.0.0.1",
      CONTENT_TYPE: req.headers["content-type"] ?? "",
      CONTENT_LENGTH: String(body.length),
    };
    if (req.headers["git-protocol"]) env.GIT_PROTOCOL = String(req.headers["git-protocol"]);
    if (req.headers["content-encoding"]) env.HTTP_CONTENT_ENCODING = String(req.headers["content-encoding"]);
    const child = spawn("git", ["http-backend"], { env, stdio: ["pipe", "pipe", "pipe"] });
    // http-backend may stop reading once it has what it needs; a broken pipe is not a failure.
    child.stdin.on("error", () => {});
    child.stdin.end(body);
    const out: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    const raw = Buffer.concat(out);
    let split = raw.indexOf("\r\n\r\n");
    let sepLen = 4;
    if (split < 0) {
      split = raw.indexOf("\n\n");
      sepLen = 2;
    }
    if (code !== 0 && split < 0) {
      log(500);
      res.writeHead(500);
      res.end();
      return;
    }
    const headers: Record<string, string> = {};
    let status = 200;
    for (const line of raw.subarray(0, split).toString("latin1").split(/\r?\n/)) {
      const colon = line.indexOf(":");
      if (colon < 0) continue;
      const k = line.slice(0, colon).trim();
      const v = line.slice(colon + 1).trim();
      if (k.toLowerCase() === "status") status = Number.parseInt(v, 10);
      else headers[k] = v;
    }
    log(status);
    res.writeHead(status, headers);
    res.end(raw.subarray(split + sepLen));
  }
}

// The SSH side lives in sshd.ts, shared with the SSH forwarding and ssh:// Docker host tests.
export { SshAgent, TestSshd as GitSshServer } from "./sshd.js";
