// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Dockerfile text uses ${VAR} on purpose
// Fuzzes the Dockerfile → LLB converter with generated and mutated Dockerfiles: every input must
// either convert or fail with a DockerfileError (never another error), and promptly.
import assert from "node:assert/strict";
import fc from "fast-check";
import { checkDockerfileReport } from "../../../src/frontend/dockerfile/checks/index.js";
import { convertDockerfile } from "../../../src/frontend/dockerfile/convert/index.js";
import { DockerfileError } from "../../../src/frontend/dockerfile/parser/errors.js";
import { marshalDefinition } from "../../../src/llb/definition.js";
import { AMD64, resolver } from "../llb/fixtures.js";

const word = fc.constantFrom(
  "a",
  "b.txt",
  "dir/",
  "./x",
  "../up",
  "/abs/path",
  "*.go",
  "$A",
  "${A}",
  "${A:-def}",
  "${A:+alt}",
  "${B:?boom}",
  "${A#pre}",
  "$",
  '"q w"',
  "'s'",
  "\\$A",
  "a=b",
  "-",
  "",
  ".",
  "http://example.com/f.tgz",
  "https://github.com/o/r.git#main:sub",
  "git@github.com:o/r.git",
  "80/tcp",
  "1-3/udp",
  "SIGTERM",
  "0755",
  "u+x",
  "root:root",
  "1000",
);
const image = fc.constantFrom(
  "busybox",
  "alpine:3.20",
  "scratch",
  "nginx",
  "golang:1.22",
  "onbuild",
  "empty",
  "nosuch",
  "$A",
  "${IMG}",
  "base",
  "build",
  "0",
  "UPPER",
  "",
);
const stageName = fc.constantFrom("base", "build", "out", "base", "build", "Build", "context", "a.b-c_d");
const FLAG_POOL = [
  "--from=base",
  "--from=0",
  "--from=7",
  "--from=busybox",
  "--from=$A",
  "--chown=1:1",
  "--chown=app",
  "--chmod=644",
  "--chmod=u+x",
  "--chmod=999",
  "--link",
  "--parents",
  "--exclude=*.md",
  "--checksum=sha256:" + "0".repeat(64),
  "--keep-git-dir=true",
  "--unpack",
  "--mount=type=cache,target=/c",
  "--mount=type=cache,target=/c,uid=1,mode=0700,sharing=locked",
  "--mount=type=bind,from=base,source=/x,target=/y",
  "--mount=type=bind,target=/,rw",
  "--mount=type=tmpfs,target=/t,size=1m",
  "--mount=type=secret,id=s",
  "--mount=type=secret,id=s,env=S",
  "--mount=type=secret",
  "--mount=type=ssh,id=x,target=/s",
  "--mount=type=ssh,source=x",
  "--mount=target=$A",
  "--mount=from=later,target=/l",
  "--network=none",
  "--network=host",
  "--security=insecure",
  "--platform=$BUILDPLATFORM",
  "--platform=linux/arm64",
  "--platform=bogus/os/x/y",
  "--interval=5s",
  "--retries=3",
  "--bogus",
];
const flag = fc.constantFrom(...FLAG_POOL);
const keyword = fc.constantFrom(
  "RUN",
  "COPY",
  "ADD",
  "ENV",
  "ARG",
  "LABEL",
  "WORKDIR",
  "USER",
  "EXPOSE",
  "VOLUME",
  "STOPSIGNAL",
  "CMD",
  "ENTRYPOINT",
  "SHELL",
  "HEALTHCHECK",
  "ONBUILD",
  "MAINTAINER",
  "run",
  "Copy",
  "FROM",
);

const FLAGS: Record<string, readonly string[]> = {
  RUN: flagsFor("--mount", "--network", "--security"),
  COPY: flagsFor("--from", "--chown", "--chmod", "--link", "--parents", "--exclude"),
  ADD: flagsFor("--chown", "--chmod", "--link", "--exclude", "--checksum", "--keep-git-dir", "--unpack"),
  HEALTHCHECK: flagsFor("--interval", "--retries"),
};
function flagsFor(...names: string[]): string[] {
  return FLAG_POOL.filter((f) => names.some((n) => f.startsWith(n)));
}

/** Mostly flags the instruction takes; now and then any flag. */
const flagsOf = (kw: string) =>
  fc.uniqueArray(
    fc.oneof(
      { weight: 9, arbitrary: fc.constantFrom(...(FLAGS[kw.toUpperCase()] ?? ["--bogus"])) },
      { weight: 1, arbitrary: flag },
    ),
    {
      maxLength: kw.toUpperCase() in FLAGS ? 3 : 0,
      selector: (f) => (f.startsWith("--mount") ? f : f.split("=")[0]),
    },
  );

const instruction = keyword.chain((kw) =>
  fc
    .tuple(
      fc.constant(kw),
      flagsOf(kw),
      fc.array(word, { minLength: 1, maxLength: 4 }),
      fc.boolean(),
      fc.nat(9),
    )
    .map(([kw, flags, args, json, style]) => {
      const K = kw.toUpperCase();
      const f = flags.join(" ");
      if (K === "SHELL" || (json && (K === "CMD" || K === "ENTRYPOINT" || K === "RUN")))
        return `${kw} ${f} ${JSON.stringify(args)}`;
      if (style === 0 && (K === "RUN" || K === "COPY" || K === "ADD"))
        return `${kw} ${f} <<EOF ${K === "RUN" ? "" : "/dst"}\n${args.join(" ")}\nEOF`;
      if (style === 1 && K === "RUN") return `RUN <<EOF\n#!/bin/sh\necho ${args.join(" ")}\nEOF`;
      if (K === "HEALTHCHECK") return `HEALTHCHECK ${f} ${style < 3 ? "NONE" : `CMD ${args.join(" ")}`}`;
      if (K === "ONBUILD") return `ONBUILD ${style < 5 ? "RUN" : "COPY --from=base"} ${args.join(" ")} /x`;
      if (K === "ENV" || K === "LABEL" || K === "ARG")
        return `${kw} ${args.map((a, i) => (style < 7 || K === "ARG" ? `K${i}=${a}` : `K${i} ${a}`)).join(" ")}`;
      if (K === "COPY" || K === "ADD") return `${kw} ${f} ${args.join(" ")} ${style < 5 ? "/dst/" : "rel"}`;
      if (K === "USER" || K === "WORKDIR" || K === "STOPSIGNAL" || K === "MAINTAINER" || K === "FROM")
        return `${kw} ${args[0] || "x"}`;
      return `${kw} ${f} ${args.join(" ")}`.replace(/\s+$/, "");
    }),
);

const stage = fc
  .tuple(
    fc.option(
      fc.constantFrom(
        "--platform=$BUILDPLATFORM",
        "--platform=linux/arm64",
        "--platform=$TARGETPLATFORM",
        "--platform=bogus",
      ),
    ),
    fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom("busybox", "alpine:3.20", "scratch", "base", "golang:1.22") },
      image,
    ),
    fc.option(stageName),
    fc.array(instruction, { maxLength: 6 }),
  )
  .map(([platform, img, name, body]) =>
    [`FROM ${platform ?? ""} ${img || "busybox"}${name ? ` AS ${name}` : ""}`, ...body].join("\n"),
  );

const dockerfile = fc
  .tuple(
    fc.array(
      fc.constantFrom("ARG A=1", "ARG IMG=busybox", "ARG B", "# check=skip=all", "ARG BUILDPLATFORM"),
      {
        maxLength: 3,
      },
    ),
    fc.array(stage, { minLength: 1, maxLength: 4 }),
  )
  .map(([pre, stages]) => `${[...pre, ...stages].join("\n")}\n`);

const SEEDS = [
  "ARG V=1\nFROM busybox AS base\nRUN --mount=type=cache,target=/c echo $V\nFROM base\nCOPY --from=base /a /b\n",
  'FROM scratch\nCOPY --link <<EOF /x\nhello\nEOF\nCMD ["/x"]\n',
  'FROM golang:1.22 AS build\nWORKDIR /src\nCOPY go.* ./\nRUN go build\nFROM busybox\nCOPY --from=build /src/app /app\nENTRYPOINT ["/app"]\n',
  "FROM onbuild\nADD https://example.com/a.tgz /\nEXPOSE 80 443/udp\nHEALTHCHECK CMD true\n",
];
const mutated = fc
  .tuple(
    fc.constantFrom(...SEEDS),
    fc.array(
      fc.tuple(
        fc.nat(400),
        fc.nat(6),
        fc.constantFrom(
          "\\",
          "\n",
          '"',
          "'",
          "$",
          "{",
          "}",
          "<<",
          "[",
          "]",
          "=",
          " ",
          "#",
          "--",
          ",",
          ":",
          "\t",
          "é",
        ),
      ),
      { minLength: 1, maxLength: 6 },
    ),
  )
  .map(([seed, edits]) => {
    let s = seed;
    for (const [pos, del, ins] of edits) {
      const p = pos % (s.length + 1);
      s = s.slice(0, p) + ins + s.slice(p + (del % 3));
    }
    return s;
  });

async function convertOnce(text: string, target?: string): Promise<void> {
  const opts = {
    targetPlatform: AMD64,
    buildArgs: { A: "a" },
    resolveImage: resolver(),
    target,
    namedContexts: { later: { kind: "local" as const, name: "later" } },
  };
  try {
    const r = await convertDockerfile(text, opts);
    // the result must marshal and be stable
    assert.equal(marshalDefinition(r.definition), marshalDefinition(r.definition));
  } catch (e) {
    if (!(e instanceof DockerfileError)) {
      throw new Error(`non-Dockerfile error for:\n${text}\n---\n${(e as Error)?.stack ?? String(e)}`);
    }
  }
}

describe("Dockerfile → LLB fuzzing", function () {
  this.timeout(120000);

  it("converts generated Dockerfiles or fails with a DockerfileError", async () => {
    await fc.assert(
      fc.asyncProperty(dockerfile, fc.option(stageName), async (text, target) => {
        await convertOnce(text, target ?? undefined);
      }),
      { numRuns: 1500, seed: 4242 },
    );
  });

  it("converts mutated Dockerfiles or fails with a DockerfileError", async () => {
    await fc.assert(
      fc.asyncProperty(mutated, async (text) => {
        await convertOnce(text);
      }),
      { numRuns: 1000, seed: 2424 },
    );
  });

  it("runs the build checks on anything without throwing", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(dockerfile, mutated), async (text) => {
        const report = await checkDockerfileReport(text, { targetPlatform: AMD64, resolveImage: resolver() });
        assert.ok(Array.isArray(report.warnings));
        if (report.error) assert.ok(report.error instanceof DockerfileError);
      }),
      { numRuns: 500, seed: 99 },
    );
  });
});
