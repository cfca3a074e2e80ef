// Benchmark: parsing a generated 1,000-instruction Dockerfile (text → AST → typed instructions).
// Run by hand: `npx tsx bench/parse-1000.ts [--runs N] [--instructions N]`. Prints the median
// milliseconds of each phase over the runs. The Dockerfile→LLB converter adds its own phase here.
import { parseInstructions } from "../src/frontend/dockerfile/instructions/index.js";
import { parseDockerfile } from "../src/frontend/dockerfile/parser/index.js";

/** A realistic mix: stages, RUN with continuations, mounts and heredocs, COPY/ADD with flags, ENV/LABEL/ARG… */
export function generateDockerfile(instructions: number): string {
  const lines: string[] = ["# syntax=docker/dockerfile:1", "ARG BASE=debian:bookworm", "ARG VERSION=1.0"];
  let count = 2;
  let stage = 0;
  const templates: ((i: number) => string[])[] = [
    (i) => [
      `RUN apt-get update && \\`,
      `    apt-get install -y --no-install-recommends pkg${i} && \\`,
      "    rm -rf /var/lib/apt/lists/*",
    ],
    (i) => [
      `RUN --mount=type=cache,target=/root/.cache/${i},sharing=locked --mount=type=secret,id=tok${i} make -j4 target${i}`,
    ],
    (i) => [`COPY --chown=1000:1000 --chmod=0644 src/${i}/ /app/src/${i}/`],
    (i) => [`ENV PATH=/opt/bin${i}:$PATH VERSION_${i}="\${VERSION}-${i}"`],
    (i) => [`LABEL org.example.step${i}="step ${i}" org.example.version=$VERSION`],
    (i) => [`ARG OPT_${i}=default${i}`],
    (i) => [`WORKDIR /app/dir${i}`],
    (i) => [`RUN <<EOF`, `set -e`, `echo building ${i}`, `test -d /app || mkdir -p /app`, `EOF`],
    (i) => [`ADD --checksum=sha256:${"0".repeat(64)} https://example.com/f${i}.tgz /tmp/f${i}.tgz`],
    (i) => [`RUN ["/bin/sh", "-c", "echo exec form ${i}"]`],
    (i) => [`EXPOSE ${8000 + (i % 1000)}/tcp`],
    (i) => [`USER app${i % 3}:app`],
    (i) => [
      `HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD curl -f http://localhost:${i}/ || exit 1`,
    ],
    (i) => [`COPY --from=stage${Math.max(0, stage - 1)} /out/${i} /in/${i}`],
  ];
  while (count < instructions) {
    if (count % 100 === 2) {
      lines.push("", `# stage ${stage}`, `FROM --platform=$BUILDPLATFORM \${BASE} AS stage${stage}`);
      stage++;
      count++;
      continue;
    }
    lines.push(...templates[count % templates.length]!(count));
    count++;
  }
  lines.push('CMD ["/app/run"]');
  return `${lines.join("\n")}\n`;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

function main(): void {
  const runs = arg("runs", 50);
  const n = arg("instructions", 1000);
  const text = generateDockerfile(n);
  const parseTimes: number[] = [];
  const instTimes: number[] = [];
  const totalTimes: number[] = [];
  let instructionCount = 0;
  for (let i = 0; i < runs + 5; i++) {
    const t0 = performance.now();
    const parsed = parseDockerfile(text);
    const t1 = performance.now();
    const insts = parseInstructions(parsed);
    const t2 = performance.now();
    instructionCount = parsed.ast.children.length;
    void insts;
    if (i < 5) continue; // warm-up
    parseTimes.push(t1 - t0);
    instTimes.push(t2 - t1);
    totalTimes.push(t2 - t0);
  }
  const f = (x: number) => x.toFixed(3);
  console.log(
    `parse-1000: ${instructionCount} instructions, ${text.split("\n").length} lines, ${runs} runs (median ms)`,
  );
  console.log(`  parse (text → AST)            ${f(median(parseTimes))}`);
  console.log(`  instructions (AST → typed)    ${f(median(instTimes))}`);
  console.log(`  total                         ${f(median(totalTimes))}`);
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("parse-1000.ts")) main();
