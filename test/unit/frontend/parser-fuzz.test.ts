// biome-ignore-all lint/suspicious/noTemplateCurlyInString: shell variable syntax in plain strings is the test data
// Fuzzing the Dockerfile front end: more than 10,000 random, generated and mutated Dockerfiles
// (the conformance Dockerfiles mutated, "instruction soup", raw random text) go through the
// parser, the AST dump, instruction parsing, mount expansion and the shell lexer. The only
// failure allowed is a DockerfileError; every case must finish quickly.
//
// The cases run in a child process (this same file, started with KILN_FUZZ_CHILD=1) so that a
// hang can be detected and stopped: the child records each case before running it, and the test
// kills the child when it stops reporting progress and fails with the case it was stuck on.
import assert from "node:assert/strict";
import { type ChildProcess, fork } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import {
  expandRunMounts,
  parseInstruction,
  type RunInstruction,
} from "../../../src/frontend/dockerfile/instructions/index.js";
import { DockerfileError, dumpNode, parseDockerfile } from "../../../src/frontend/dockerfile/parser/index.js";
import { envsFromSlice, ShellLex } from "../../../src/frontend/dockerfile/shell/index.js";

const thisFile = fileURLToPath(import.meta.url);
const repoRoot = path.resolve(path.dirname(thisFile), "../../..");
const conformance = path.resolve(repoRoot, "../shared/conformance");

/** Per-case time bound (ms): far above the usual well-under-a-millisecond. */
const CASE_LIMIT_MS = 2000;
/** The parent gives up on the child after this long without progress (ms). */
const STALL_LIMIT_MS = 30_000;
const RUNS = { mutated: 5000, soup: 4000, random: 1500 } as const;

// ---------- inputs ----------

function corpus(): string[] {
  const out: string[] = [];
  for (const dir of ["dockerfile-parser", "dockerfile-parser-negative"]) {
    const full = path.join(conformance, dir);
    if (!existsSync(full)) continue;
    for (const name of readdirSync(full)) {
      const f = path.join(full, name, "Dockerfile");
      if (existsSync(f)) out.push(readFileSync(f, "utf8"));
    }
  }
  out.push(
    [
      "# syntax=docker/dockerfile:1",
      "# escape=\\",
      "ARG BASE=alpine",
      "FROM --platform=$BUILDPLATFORM ${BASE} AS build",
      "RUN --mount=type=cache,target=/root/.cache,sharing=locked --mount=type=secret,id=tok,env=TOK <<EOF bash",
      "set -e",
      "echo ${TOK:-none}",
      "EOF",
      "COPY --from=build --chown=1:1 --chmod=0644 <<-'A' <<B /dst/",
      "\thello",
      "A",
      "world",
      "B",
      "ADD --checksum=sha256:abc --keep-git-dir https://example.com/x.tgz /x",
      "HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/ || exit 1",
      "ONBUILD RUN <<EOF",
      "echo trigger",
      "EOF",
      'ENTRYPOINT ["/bin/app", "--flag"]',
      'SHELL ["/bin/bash", "-c"]',
      "EXPOSE 80/tcp 443",
      'VOLUME ["/data"]',
      "USER app:app",
      "WORKDIR /srv/${NAME}",
      "STOPSIGNAL SIGTERM",
      'LABEL a=b "c d"=e',
      'ENV A=1 B="two words" C=${A:+x}',
    ].join("\n"),
  );
  return out;
}

const tokens = [
  "\\",
  "\n",
  " \\\n",
  "\\\n\n",
  "<<EOF",
  "<<-EOF",
  "<<'EOF'",
  "\nEOF\n",
  "EOF",
  "${",
  "}",
  "$",
  "${X:-y}",
  "${X/a/b}",
  "${X#*}",
  '"',
  "'",
  "[",
  "]",
  '["a", "b"]',
  "[1]",
  ",",
  "=",
  "--",
  "--mount=",
  "--mount=type=cache,target=/x",
  "--mount=type=secret",
  "--mount=from=$X",
  "--from=",
  "--network=none",
  "--chmod=",
  "#",
  "# escape=`\n",
  "# syntax=x\n",
  "`",
  "`\n",
  "\t",
  "\r\n",
  "\r",
  " ",
  "é",
  "\u00a0",
  "\u0085",
  "\u2028",
  "\ufeff",
  "\u0000",
  "\u{1F600}",
  "ONBUILD ",
  "HEALTHCHECK ",
  "HEALTHCHECK NONE",
  "RUN ",
  "COPY ",
  "FROM ",
  " AS ",
  "CMD ",
  "ENV ",
  "ARG ",
  "{",
  '""',
  "''",
];

const instructionWords = [
  "FROM",
  "RUN",
  "CMD",
  "LABEL",
  "MAINTAINER",
  "EXPOSE",
  "ENV",
  "ADD",
  "COPY",
  "ENTRYPOINT",
  "VOLUME",
  "USER",
  "WORKDIR",
  "ARG",
  "ONBUILD",
  "STOPSIGNAL",
  "HEALTHCHECK",
  "SHELL",
  "RUNN",
  "FORM",
  "",
];

const flagWords = [
  "--from=build",
  "--chown=1:2",
  "--chmod=755",
  "--link",
  "--link=false",
  "--parents",
  "--exclude=*.md",
  "--checksum=sha256:0",
  "--keep-git-dir",
  "--unpack=true",
  "--platform=linux/amd64",
  "--mount=type=bind,target=/a,ro",
  "--mount=type=cache,target=/c,id=x,sharing=private,mode=0700,uid=1,gid=2",
  "--mount=type=tmpfs,target=/t,size=10m",
  "--mount=type=ssh,required",
  "--mount=type=secret,id=s,env=S",
  "--mount=target=$T",
  "--network=host",
  "--security=insecure",
  "--device=/dev/x",
  "--interval=1s",
  "--timeout=50ns",
  "--retries=-1",
  "--start-period=1x",
  "--bogus",
  "--",
];

const argWords = [
  "a",
  "/dst/",
  "a=b",
  "k v",
  '"q w"',
  "'s'",
  "$X",
  "${Y:-z}",
  "AS",
  "as",
  "stage",
  "1bad",
  "CMD",
  "NONE",
  '["x"]',
  "[]",
  "<<EOF",
  "80/tcp",
  "\\",
];

const mutation = fc.oneof(
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    text: fc.oneof(
      fc.constantFrom(...tokens),
      fc.string({ maxLength: 6 }),
      fc.string({ unit: "binary", maxLength: 4 }),
    ),
  }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant("dupline" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("swaplines" as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ kind: fc.constant("case" as const), at: fc.nat(), len: fc.integer({ min: 1, max: 20 }) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function applyMutation(text: string, m: Mutation): string {
  const n = text.length + 1;
  switch (m.kind) {
    case "insert": {
      const at = m.at % n;
      return text.slice(0, at) + m.text + text.slice(at);
    }
    case "delete": {
      const at = m.at % n;
      return text.slice(0, at) + text.slice(at + m.len);
    }
    case "case": {
      const at = m.at % n;
      const part = text.slice(at, at + m.len);
      const flipped = part === part.toUpperCase() ? part.toLowerCase() : part.toUpperCase();
      return text.slice(0, at) + flipped + text.slice(at + m.len);
    }
    case "dupline": {
      const lines = text.split("\n");
      const i = m.at % lines.length;
      lines.splice(i, 0, lines[i]!);
      return lines.join("\n");
    }
    case "swaplines": {
      const lines = text.split("\n");
      const i = m.a % lines.length;
      const j = m.b % lines.length;
      [lines[i], lines[j]] = [lines[j]!, lines[i]!];
      return lines.join("\n");
    }
  }
}

export function mutatedDockerfiles(): fc.Arbitrary<string> {
  const base = corpus();
  return fc
    .tuple(fc.constantFrom(...base), fc.array(mutation, { minLength: 1, maxLength: 8 }))
    .map(([text, ms]) => ms.reduce(applyMutation, text));
}

const soupLine = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .tuple(
        fc.constantFrom(...instructionWords),
        fc.constantFrom("upper", "lower", "mixed"),
        fc.array(fc.constantFrom(...flagWords), { maxLength: 3 }),
        fc.array(fc.oneof(fc.constantFrom(...argWords), fc.string({ maxLength: 8 })), { maxLength: 5 }),
      )
      .map(([kw, casing, flags, args]) => {
        const k =
          casing === "upper"
            ? kw
            : casing === "lower"
              ? kw.toLowerCase()
              : kw.charAt(0) + kw.slice(1).toLowerCase();
        return [k, ...flags, ...args].join(" ");
      }),
  },
  { weight: 1, arbitrary: fc.constantFrom("", "# comment", "#", "EOF", "\t-EOF", "  \\", "\\") },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
);

export function instructionSoup(): fc.Arbitrary<string> {
  return fc
    .tuple(
      fc.constantFrom(
        "",
        "# escape=`\n",
        "# syntax=docker/dockerfile:1\n",
        "FROM scratch\n",
        "ARG A=1\nFROM a\n",
      ),
      fc.array(soupLine, { maxLength: 40 }),
      fc.constantFrom("", "\n", "\r\n", " \\"),
      fc.constantFrom("\n", "\r\n"),
    )
    .map(([head, lines, tail, eol]) => head + lines.join(eol) + tail);
}

export function randomText(): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ unit: "binary", maxLength: 200 }),
    fc
      .array(fc.constantFrom(...tokens, ...instructionWords.map((w) => `${w} `)), { maxLength: 60 })
      .map((a) => a.join("")),
  );
}

// ---------- the property ----------

const lexEnv = envsFromSlice(["A=1", "X=x y", "T=/t", "EMPTY="]);

function ignoreDockerfileErrors(fn: () => void): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof DockerfileError)) throw e;
    // a DockerfileError must render
    assert.equal(typeof e.format(), "string");
  }
}

/** Runs one input through everything; throws on anything but a DockerfileError or a slow case. */
function exercise(text: string): void {
  const started = performance.now();
  ignoreDockerfileErrors(() => {
    const r = parseDockerfile(text);
    assert.ok(r.ast.children.length > 0);
    dumpNode(r.ast);
    const lex = new ShellLex(r.escapeToken);
    for (const node of r.ast.children) {
      assert.ok(node.startLine >= 1 && node.endLine >= node.startLine && node.endLine <= r.lines.length);
      ignoreDockerfileErrors(() => {
        const inst = parseInstruction(node, { lines: r.lines, escapeToken: r.escapeToken });
        if (inst.kind === "run") {
          ignoreDockerfileErrors(() =>
            expandRunMounts(inst as RunInstruction, (w) => lex.processWord(w, lexEnv)),
          );
        }
      });
      ignoreDockerfileErrors(() => lex.processWords(node.original, lexEnv));
      ignoreDockerfileErrors(() => lex.processWordWithMatches(node.original, lexEnv));
    }
  });
  const elapsed = performance.now() - started;
  if (elapsed > CASE_LIMIT_MS) throw new Error(`case took ${Math.round(elapsed)} ms`);
}

// ---------- child: runs the cases ----------

function runChild(): void {
  const currentFile = process.env.KILN_FUZZ_CURRENT!;
  const seed = Number(process.env.KILN_FUZZ_SEED);
  let count = 0;
  const track = (kind: string) => (text: string) => {
    writeFileSync(currentFile, JSON.stringify({ kind, text }));
    exercise(text);
    count++;
    if (count % 250 === 0) process.send!({ type: "progress", count });
    return true;
  };
  try {
    fc.assert(fc.property(mutatedDockerfiles(), track("mutated")), { numRuns: RUNS.mutated, seed });
    fc.assert(fc.property(instructionSoup(), track("soup")), { numRuns: RUNS.soup, seed: seed + 1 });
    fc.assert(fc.property(randomText(), track("random")), { numRuns: RUNS.random, seed: seed + 2 });
    process.send!({ type: "done", count }, undefined, {}, () => process.exit(0));
  } catch (e) {
    process.send!({ type: "failed", count, message: (e as Error).message }, undefined, {}, () =>
      process.exit(1),
    );
  }
}

// ---------- parent: the mocha test ----------

if (process.env.KILN_FUZZ_CHILD === "1") {
  runChild();
} else {
  describe("Dockerfile front end fuzzing", () => {
    it("survives 10,000+ random, generated and mutated Dockerfiles with only DockerfileErrors", async function () {
      this.timeout(300_000);
      const dir = mkdtempSync(path.join(tmpdir(), "kiln-fuzz-"));
      const currentFile = path.join(dir, "current.json");
      const seed = process.env.KILN_FUZZ_SEED ? Number(process.env.KILN_FUZZ_SEED) : Date.now() % 2 ** 31;
      let child: ChildProcess | undefined;
      try {
        const result = await new Promise<{ type: string; count: number; message?: string }>(
          (resolve, reject) => {
            child = fork(thisFile, [], {
              execArgv: ["--import", "tsx"],
              env: {
                ...process.env,
                KILN_FUZZ_CHILD: "1",
                KILN_FUZZ_CURRENT: currentFile,
                KILN_FUZZ_SEED: String(seed),
              },
              stdio: ["ignore", "inherit", "inherit", "ipc"],
            });
            let watchdog = setTimeout(stalled, STALL_LIMIT_MS);
            function stalled() {
              child?.kill("SIGKILL");
              const current = existsSync(currentFile) ? readFileSync(currentFile, "utf8") : "(unknown)";
              reject(new Error(`fuzz case hung for ${STALL_LIMIT_MS} ms (seed ${seed}); input: ${current}`));
            }
            child.on("message", (m: { type: string; count: number; message?: string }) => {
              clearTimeout(watchdog);
              if (m.type === "progress") watchdog = setTimeout(stalled, STALL_LIMIT_MS);
              else resolve(m);
            });
            child.on("exit", (code) => {
              clearTimeout(watchdog);
              reject(new Error(`fuzz child exited with ${code} before reporting (seed ${seed})`));
            });
            child.on("error", reject);
          },
        );
        assert.equal(result.type, "done", `seed ${seed}: ${result.message}`);
        assert.ok(result.count >= 10_000, `only ${result.count} cases ran`);
      } finally {
        if (child && child.exitCode === null) child.kill("SIGKILL");
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
