// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Dockerfile text uses ${VAR} on purpose
import assert from "node:assert/strict";
import {
  checkDockerfile,
  checkDockerfileReport,
  parseLintOptions,
  Rules,
  type Warning,
} from "../../../src/frontend/dockerfile/checks/index.js";
import { convertDockerfile } from "../../../src/frontend/dockerfile/convert/index.js";
import type { ConvertOptions } from "../../../src/frontend/dockerfile/convert/types.js";
import { AMD64, resolver } from "../llb/fixtures.js";

const df = (...lines: string[]) => `${lines.join("\n")}\n`;
const check = (text: string, opts: ConvertOptions = {}) =>
  checkDockerfile(text, { targetPlatform: AMD64, resolveImage: resolver(), ...opts });
const brief = (ws: readonly Warning[]) => ws.map((w) => [w.rule, w.message, w.location.startLine]);

async function only(text: string, rule: string, opts: ConvertOptions = {}) {
  return brief((await check(text, opts)).filter((w) => w.rule === rule));
}

describe("build checks", () => {
  it("StageNameCasing and FromAsCasing", async () => {
    assert.deepEqual(await only(df("FROM busybox AS Build"), "StageNameCasing"), [
      ["StageNameCasing", "Stage name 'Build' should be lowercase", 1],
    ]);
    assert.deepEqual(await only(df("FROM busybox as build"), "FromAsCasing"), [
      ["FromAsCasing", "'as' and 'FROM' keywords' casing do not match", 1],
    ]);
  });

  it("NoEmptyContinuation", async () => {
    const ws = await only(df("FROM busybox", "RUN echo a \\", "", "  b"), "NoEmptyContinuation");
    assert.deepEqual(ws, [["NoEmptyContinuation", "Empty continuation line", 4]]);
  });

  it("ConsistentInstructionCasing", async () => {
    assert.deepEqual(await only(df("FROM busybox", "run true", "RUN true"), "ConsistentInstructionCasing"), [
      [
        "ConsistentInstructionCasing",
        "Command 'run' should match the case of the command majority (uppercase)",
        2,
      ],
    ]);
    assert.deepEqual(await only(df("from busybox", "run true", "Run true"), "ConsistentInstructionCasing"), [
      [
        "ConsistentInstructionCasing",
        "Command 'Run' should match the case of the command majority (lowercase)",
        3,
      ],
    ]);
  });

  it("DuplicateStageName and ReservedStageName", async () => {
    const text = df("FROM busybox AS a", "FROM busybox AS a", "FROM busybox AS context");
    assert.deepEqual(await only(text, "DuplicateStageName"), [
      ["DuplicateStageName", 'Duplicate stage name "a", stage names should be unique', 2],
    ]);
    assert.deepEqual(await only(text, "ReservedStageName"), [
      ["ReservedStageName", 'Stage name should not use the same name as reserved stage "context"', 3],
    ]);
  });

  it("JSONArgsRecommended", async () => {
    assert.deepEqual(
      await only(df("FROM busybox", "CMD echo hi", "ENTRYPOINT my-app"), "JSONArgsRecommended"),
      [
        [
          "JSONArgsRecommended",
          "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals",
          2,
        ],
        [
          "JSONArgsRecommended",
          "JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals",
          3,
        ],
      ],
    );
    assert.deepEqual(
      await only(df("FROM busybox", 'SHELL ["/bin/bash", "-c"]', "CMD echo hi"), "JSONArgsRecommended"),
      [],
    );
  });

  it("MaintainerDeprecated", async () => {
    assert.deepEqual(await only(df("FROM busybox", "MAINTAINER me"), "MaintainerDeprecated"), [
      ["MaintainerDeprecated", "Maintainer instruction is deprecated in favor of using label", 2],
    ]);
  });

  it("UndefinedArgInFrom", async () => {
    assert.deepEqual(
      await only(df("ARG VERSION=1", "FROM busybox:${VERSON:-latest}"), "UndefinedArgInFrom"),
      [["UndefinedArgInFrom", "FROM argument 'VERSON' is not declared (did you mean VERSION?)", 2]],
    );
    assert.deepEqual(await only(df("FROM --platform=$BUILDPLATFORM busybox"), "UndefinedArgInFrom"), []);
  });

  it("WorkdirRelativePath", async () => {
    assert.deepEqual(await only(df("FROM busybox", "WORKDIR app", "WORKDIR more"), "WorkdirRelativePath"), [
      [
        "WorkdirRelativePath",
        'Relative workdir "app" can have unexpected results if the base image changes',
        2,
      ],
    ]);
    assert.deepEqual(
      await only(df("FROM busybox", "WORKDIR /app", "WORKDIR more"), "WorkdirRelativePath"),
      [],
    );
  });

  it("UndefinedVar, with suggestions, not for declared ARGs", async () => {
    assert.deepEqual(
      await only(
        df("FROM busybox", "ARG DECLARED", "ENV FOO=bar", "COPY $FOO $DECLARED $FOOO /x"),
        "UndefinedVar",
      ),
      [["UndefinedVar", "Usage of undefined variable '$FOOO' (did you mean $FOO?)", 4]],
    );
    assert.deepEqual(await only(df("FROM busybox", "ENV PATH=$PATH:/x"), "UndefinedVar"), []);
  });

  it("MultipleInstructionsDisallowed reports the instruction that is ignored", async () => {
    assert.deepEqual(
      await only(df("FROM busybox", 'CMD ["a"]', 'CMD ["b"]'), "MultipleInstructionsDisallowed"),
      [
        [
          "MultipleInstructionsDisallowed",
          "Multiple CMD instructions should not be used in the same stage because only the last one will be used",
          2,
        ],
      ],
    );
  });

  it("LegacyKeyValueFormat", async () => {
    assert.deepEqual(await only(df("FROM busybox", "ENV A b", "LABEL x y"), "LegacyKeyValueFormat"), [
      ["LegacyKeyValueFormat", '"ENV key=value" should be used instead of legacy "ENV key value" format', 2],
      [
        "LegacyKeyValueFormat",
        '"LABEL key=value" should be used instead of legacy "LABEL key value" format',
        3,
      ],
    ]);
  });

  it("InvalidDefaultArgInFrom", async () => {
    assert.deepEqual(
      await only(df("ARG TAG", "FROM busybox:${TAG}"), "InvalidDefaultArgInFrom", {
        buildArgs: { TAG: "1" },
        resolveImage: undefined,
      }),
      [
        [
          "InvalidDefaultArgInFrom",
          "Default value for ARG busybox:${TAG} results in empty or invalid base image name",
          2,
        ],
      ],
    );
  });

  it("FromPlatformFlagConstDisallowed and RedundantTargetPlatform", async () => {
    assert.deepEqual(
      await only(df("FROM --platform=linux/amd64 busybox AS build"), "FromPlatformFlagConstDisallowed"),
      [
        [
          "FromPlatformFlagConstDisallowed",
          'FROM --platform flag should not use constant value "linux/amd64"',
          1,
        ],
      ],
    );
    assert.deepEqual(
      await only(df("FROM --platform=linux/amd64 busybox AS build-amd64"), "FromPlatformFlagConstDisallowed"),
      [],
    );
    assert.deepEqual(await only(df("FROM --platform=$TARGETPLATFORM busybox"), "RedundantTargetPlatform"), [
      [
        "RedundantTargetPlatform",
        "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
        1,
      ],
    ]);
  });

  it("SecretsUsedInArgOrEnv", async () => {
    assert.deepEqual(
      await only(
        df("FROM busybox", "ARG GITHUB_TOKEN", "ENV DB_PASSWORD=x PUBLIC_KEY=y AUTH_FILE=z"),
        "SecretsUsedInArgOrEnv",
      ),
      [
        [
          "SecretsUsedInArgOrEnv",
          'Do not use ARG or ENV instructions for sensitive data (ARG "GITHUB_TOKEN")',
          2,
        ],
        [
          "SecretsUsedInArgOrEnv",
          'Do not use ARG or ENV instructions for sensitive data (ENV "DB_PASSWORD")',
          3,
        ],
      ],
    );
  });

  it("CopyIgnoredFile", async () => {
    assert.deepEqual(
      await only(df("FROM busybox", "COPY secret.txt keep.txt /x/", "ADD logs/a.log /l"), "CopyIgnoredFile", {
        dockerignore: ["secret.txt", "logs"],
      }),
      [
        ["CopyIgnoredFile", 'Attempting to Copy file "secret.txt" that is excluded by .dockerignore', 2],
        ["CopyIgnoredFile", 'Attempting to Add file "logs/a.log" that is excluded by .dockerignore', 3],
      ],
    );
    assert.deepEqual(
      await only(df("FROM busybox", "COPY secret.txt /x/"), "CopyIgnoredFile", {
        dockerignore: ["*", "!src"],
      }),
      [],
    );
  });

  it("InvalidDefinitionDescription only when enabled (experimental)", async () => {
    const text = df("# some comment", "FROM busybox AS build", "# another", "ARG X=1");
    assert.deepEqual(await only(text, "InvalidDefinitionDescription"), []);
    assert.deepEqual(
      await only(
        df("# check=experimental=InvalidDefinitionDescription", text),
        "InvalidDefinitionDescription",
      ),
      [
        [
          "InvalidDefinitionDescription",
          "Comment for FROM should follow the format: `# build <description>`",
          3,
        ],
        ["InvalidDefinitionDescription", "Comment for ARG should follow the format: `# X <description>`", 5],
      ],
    );
  });

  it("ExposeProtoCasing and ExposeInvalidFormat", async () => {
    const ws = brief(await check(df("FROM busybox", "EXPOSE 80/TCP 127.0.0.1:8080:80")));
    // BuildKit sorts EXPOSE's ports before it looks at them
    assert.deepEqual(ws, [
      [
        "ExposeInvalidFormat",
        "EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:8080:80'",
        2,
      ],
      ["ExposeProtoCasing", "Defined protocol '80/TCP' in EXPOSE instruction should be lowercase", 2],
    ]);
  });

  it("carries each rule's URL and description", async () => {
    const [w] = await check(df("FROM busybox", "MAINTAINER me"));
    assert.equal(w!.url, "https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/");
    assert.equal(w!.description, Rules.MaintainerDeprecated.description);
    assert.equal(w!.location.file, "Dockerfile");
  });

  it("checks every stage when no target is given", async () => {
    const text = df("FROM busybox AS a", "ENV X y", "FROM busybox AS b", "ENV Z w");
    assert.equal((await only(text, "LegacyKeyValueFormat")).length, 2);
    assert.equal((await only(text, "LegacyKeyValueFormat", { target: "b" })).length, 1);
  });

  it("honours # check=skip and error=true", async () => {
    const text = df(
      "# check=skip=MaintainerDeprecated,JSONArgsRecommended",
      "FROM busybox",
      "MAINTAINER me",
      "CMD x",
    );
    assert.deepEqual(await check(text), []);
    assert.deepEqual(await check(df("# check=skip=all", "FROM busybox as b", "MAINTAINER me")), []);
    const strict = df("# check=error=true", "FROM busybox", "MAINTAINER me");
    const report = await checkDockerfileReport(strict, { targetPlatform: AMD64, resolveImage: resolver() });
    assert.equal(report.warnings.length, 1);
    assert.match(report.error!.message, /lint violation found for rules: MaintainerDeprecated/);
    await assert.rejects(
      convertDockerfile(strict, { targetPlatform: AMD64, resolveImage: resolver() }),
      /lint violation found for rules: MaintainerDeprecated/,
    );
  });

  it("honours a # check= comment above one instruction", async () => {
    const text = df("FROM busybox", "# check=skip=LegacyKeyValueFormat", "ENV A b", "ENV C d");
    assert.deepEqual(await only(text, "LegacyKeyValueFormat"), [
      ["LegacyKeyValueFormat", '"ENV key=value" should be used instead of legacy "ENV key value" format', 4],
    ]);
  });

  it("reports a build error next to the warnings", async () => {
    const report = await checkDockerfileReport(df("FROM busybox as b", "COPY --from=7 a b"));
    assert.equal(report.warnings[0]!.rule, "FromAsCasing");
    assert.match(report.error!.message, /invalid stage index 7/);
  });

  it("parses check options as BuildKit", () => {
    assert.deepEqual(parseLintOptions("skip=A, B;error=true"), {
      skipAll: false,
      skipRules: ["A", "B"],
      experimentalAll: false,
      experimentalRules: undefined,
      returnAsError: true,
    });
    assert.throws(() => parseLintOptions("nope"), /invalid check option "nope"/);
    assert.throws(() => parseLintOptions("error=maybe"), /failed to parse check option/);
  });

  it("returns warnings from a conversion too", async () => {
    const r = await convertDockerfile(df("FROM busybox", "MAINTAINER me"), {
      targetPlatform: AMD64,
      resolveImage: resolver(),
    });
    assert.deepEqual(brief(r.warnings), [
      ["MaintainerDeprecated", "Maintainer instruction is deprecated in favor of using label", 2],
    ]);
  });
});
