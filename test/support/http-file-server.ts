// A real HTTP file server on 127.0.0.1 for http-source tests: files with ETag and Last-Modified,
// conditional requests (304), redirects, an optional required Authorization header, and a log
// of every request so tests can count what was downloaded.
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ServedFile {
  body: Buffer;
  etag?: string;
  lastModified?: Date;
  contentDisposition?: string;
}

export interface LoggedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage["headers"];
  /** The status the server answered. */
  readonly status: number;
}

export interface FileOptions {
  /** Default: a quoted sha256 prefix of the body. `null`: send no ETag. */
  etag?: string | null;
  /** Default: none. */
  lastModified?: Date;
  contentDisposition?: string;
}

export class HttpFileServer {
  readonly requests: LoggedRequest[] = [];
  private readonly files = new Map<string, ServedFile>();
  private readonly redirects = new Map<string, { to: string; status: number }>();
  /** When set, requests without exactly this Authorization header get 401. */
  requiredAuthorization: string | undefined;
  /** When true, HEAD requests get 405 (servers that refuse HEAD). */
  refuseHead = false;

  private constructor(
    private readonly server: Server,
    readonly origin: string,
  ) {}

  static async start(): Promise<HttpFileServer> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const s = new HttpFileServer(server, `http://127.0.0.1:${port}`);
    server.on("request", (req, res) => s.handle(req, res));
    return s;
  }

  url(path: string): string {
    return `${this.origin}${path}`;
  }

  setFile(path: string, body: string | Buffer, opts: FileOptions = {}): void {
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
    const etag =
      opts.etag === null
        ? undefined
        : (opts.etag ?? `"${createHash("sha256").update(buf).digest("hex").slice(0, 16)}"`);
    this.files.set(path, {
      body: buf,
      etag,
      lastModified: opts.lastModified,
      contentDisposition: opts.contentDisposition,
    });
  }

  redirect(from: string, to: string, status = 302): void {
    this.redirects.set(from, { to, status });
  }

  /** Requests for `path` with `method` (GET by default) answered with a body (status 200). */
  downloads(path: string): number {
    return this.requests.filter((r) => r.path === path && r.method === "GET" && r.status === 200).length;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse) {
    const path = new URL(req.url ?? "/", this.origin).pathname;
    const answer = (status: number, headers: Record<string, string> = {}, body?: Buffer) => {
      this.requests.push({ method: req.method ?? "", path, headers: req.headers, status });
      res.writeHead(status, headers);
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (this.requiredAuthorization !== undefined && req.headers.authorization !== this.requiredAuthorization)
      return answer(401, { "WWW-Authenticate": 'Basic realm="files"' });
    if (req.method === "HEAD" && this.refuseHead) return answer(405);
    const redirect = this.redirects.get(path);
    if (redirect) return answer(redirect.status, { Location: redirect.to });
    const file = this.files.get(path);
    if (!file) return answer(404, { "Content-Type": "text/plain" }, Buffer.from("not found\n"));
    const headers: Record<string, string> = {
      "Content-Type": "application/octet-stream",
      "Content-Length": String(file.body.length),
    };
    if (file.etag) headers.ETag = file.etag;
    if (file.lastModified) headers["Last-Modified"] = file.lastModified.toUTCString();
    if (file.contentDisposition) headers["Content-Disposition"] = file.contentDisposition;
    const inm = req.headers["if-none-match"];
    if (inm !== undefined && file.etag !== undefined) {
      const asked = inm.split(",").map((t) => t.trim().replace(/^W\//, ""));
      if (asked.includes(file.etag) || asked.includes("*")) return answer(304, etagOnly(file));
    } else if (req.headers["if-modified-since"] !== undefined && file.lastModified) {
      const since = Date.parse(req.headers["if-modified-since"]);
      if (!Number.isNaN(since) && Math.floor(file.lastModified.getTime() / 1000) * 1000 <= since)
        return answer(304, etagOnly(file));
    }
    answer(200, headers, file.body);
  }
}

function etagOnly(file: ServedFile): Record<string, string> {
  const h: Record<string, string> = {};
  if (file.etag) h.ETag = file.etag;
  if (file.lastModified) h["Last-Modified"] = file.lastModified.toUTCString();
  return h;
}
