// Benchmark: parse + convert a generated 1,000-instruction Dockerfile to LLB (text → AST → typed
// instructions → dispatched stages → marshalled definition). Run by hand:
// `npx tsx bench/convert-1000.ts [--runs N] [--instructions N]`. Prints the median milliseconds;
// the target is under 50 ms for 1,000 instructions.
import { convertDockerfile } from "../src/frontend/dockerfile/convert/index.js";
import type { ResolveImageFn } from "../src/frontend/dockerfile/convert/types.js";
import { marshalDefinition } from "../src/llb/definition.js";
import { sha256Digest } from "../src/oci/digest.js";

/** A realistic mix over ten stages, each copying from the one before; every instruction kind. */
export function generateConvertibleDockerfile(instructions: number): string {
  const lines: string[] = ["# syntax=docker/dockerfile:1", "ARG BASE=debian:bookworm", "ARG VERSION=1.0"];
  let count = 2;
  let stage = 0;
  const templates: ((i: number) => string[])[] = [
    (i) => [
      "RUN apt-get update && \\",
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
    (i) => ["RUN <<EOF", "set -e", `echo building ${i}`, "test -d /app || mkdir -p /app", "EOF"],
    (i) => [`ADD --checksum=sha256:${"0".repeat(64)} https://example.com/f${i}.tgz /tmp/f${i}.tgz`],
    (i) => [`RUN ["/bin/sh", "-c", "echo exec form ${i}"]`],
    (i) => [`EXPOSE ${8000 + (i % 1000)}/tcp`],
    (i) => [`USER app${i % 3}:app`],
    (i) => [
      `HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD curl -f http://localhost:${i}/ || exit 1`,
    ],
    (i) =>
      stage > 1 ? [`COPY --link --from=stage${stage - 2} /out/${i} /in/${i}`] : [`COPY a${i} /in/${i}`],
  ];
  while (count < instructions) {
    if (count % 100 === 2) {
      lines.push(
        "",
        `# stage${stage} stage number ${stage}`,
        `FROM --platform=$BUILDPLATFORM \${BASE} AS stage${stage}`,
      );
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

const debian = {
  architecture: "amd64",
  os: "linux",
  config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["bash"] },
  rootfs: { type: "layers" as const, diff_ids: [sha256Digest("debian layer")] },
  history: [{ created_by: "# debian.sh" }],
};

const resolveImage: ResolveImageFn = async (ref) => ({ ref: `${ref}@${sha256Digest(ref)}`, config: debian });

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

async function main(): Promise<void> {
  const runs = arg("runs", 30);
  const n = arg("instructions", 1000);
  const text = generateConvertibleDockerfile(n);
  const opts = {
    targetPlatform: { os: "linux", architecture: "amd64" },
    buildPlatform: { os: "linux", architecture: "amd64" },
    resolveImage,
  };
  const convertTimes: number[] = [];
  const marshalTimes: number[] = [];
  let vertices = 0;
  for (let i = 0; i < runs + 5; i++) {
    const t0 = performance.now();
    const r = await convertDockerfile(text, opts);
    const t1 = performance.now();
    marshalDefinition(r.definition);
    const t2 = performance.now();
    vertices = r.definition.vertices.size;
    if (i < 5) continue; // warm-up
    convertTimes.push(t1 - t0);
    marshalTimes.push(t2 - t1);
  }
  const f = (x: number) => x.toFixed(2);
  const med = median(convertTimes);
  console.log(`convert-1000: ${n} instructions → ${vertices} vertices, ${runs} runs (median ms)`);
  console.log(`  parse + convert (→ Definition)   ${f(med)}${med < 50 ? "" : "  (over the 50 ms target)"}`);
  console.log(`  serialize (marshalDefinition)    ${f(median(marshalTimes))}`);
}

if (process.argv[1]?.endsWith("convert-1000.ts")) await main();
