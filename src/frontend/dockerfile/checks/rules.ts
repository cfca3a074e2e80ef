// BuildKit's build-check rules (frontend/dockerfile/linter/ruleset.go): names, descriptions,
// documentation URLs and message texts, word for word, so that `kiln build --check` reads like
// `docker build --check`.

export interface LintRule<A extends unknown[] = string[]> {
  readonly name: string;
  readonly description: string;
  readonly url: string;
  readonly experimental?: boolean;
  readonly deprecated?: boolean;
  readonly format: (...args: A) => string;
}

const DOCS = "https://docs.docker.com/go/dockerfile/rule/";

/** Go's %q for the strings these messages quote. */
function q(s: string): string {
  return JSON.stringify(s);
}

export const Rules = {
  StageNameCasing: {
    name: "StageNameCasing",
    description: "Stage names should be lowercase",
    url: `${DOCS}stage-name-casing/`,
    format: (stageName: string) => `Stage name '${stageName}' should be lowercase`,
  },
  FromAsCasing: {
    name: "FromAsCasing",
    description: "The 'as' keyword should match the case of the 'from' keyword",
    url: `${DOCS}from-as-casing/`,
    format: (from: string, as: string) => `'${as}' and '${from}' keywords' casing do not match`,
  },
  NoEmptyContinuation: {
    name: "NoEmptyContinuation",
    description: "Empty continuation lines will become errors in a future release",
    url: `${DOCS}no-empty-continuation/`,
    format: () => "Empty continuation line",
  },
  ConsistentInstructionCasing: {
    name: "ConsistentInstructionCasing",
    description: "All commands within the Dockerfile should use the same casing (either upper or lower)",
    url: `${DOCS}consistent-instruction-casing/`,
    format: (violatingCommand: string, correctCasing: string) =>
      `Command '${violatingCommand}' should match the case of the command majority (${correctCasing})`,
  },
  DuplicateStageName: {
    name: "DuplicateStageName",
    description: "Stage names should be unique",
    url: `${DOCS}duplicate-stage-name/`,
    format: (stageName: string) => `Duplicate stage name ${q(stageName)}, stage names should be unique`,
  },
  ReservedStageName: {
    name: "ReservedStageName",
    description: "Reserved words should not be used as stage names",
    url: `${DOCS}reserved-stage-name/`,
    format: (name: string) => `Stage name should not use the same name as reserved stage ${q(name)}`,
  },
  JSONArgsRecommended: {
    name: "JSONArgsRecommended",
    description:
      "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals",
    url: `${DOCS}json-args-recommended/`,
    format: (instructionName: string) =>
      `JSON arguments recommended for ${instructionName} to prevent unintended behavior related to OS signals`,
  },
  MaintainerDeprecated: {
    name: "MaintainerDeprecated",
    description: "The MAINTAINER instruction is deprecated, use a label instead to define an image author",
    url: `${DOCS}maintainer-deprecated/`,
    format: () => "Maintainer instruction is deprecated in favor of using label",
  },
  UndefinedArgInFrom: {
    name: "UndefinedArgInFrom",
    description: "FROM command must use declared ARGs",
    url: `${DOCS}undefined-arg-in-from/`,
    format: (baseArg: string, suggest: string) =>
      `FROM argument '${baseArg}' is not declared` + (suggest ? ` (did you mean ${suggest}?)` : ""),
  },
  WorkdirRelativePath: {
    name: "WorkdirRelativePath",
    description:
      "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes",
    url: `${DOCS}workdir-relative-path/`,
    format: (workdir: string) =>
      `Relative workdir ${q(workdir)} can have unexpected results if the base image changes`,
  },
  UndefinedVar: {
    name: "UndefinedVar",
    description: "Variables should be defined before their use",
    url: `${DOCS}undefined-var/`,
    format: (arg: string, suggest: string) =>
      `Usage of undefined variable '$${arg}'` + (suggest ? ` (did you mean $${suggest}?)` : ""),
  },
  MultipleInstructionsDisallowed: {
    name: "MultipleInstructionsDisallowed",
    description: "Multiple instructions of the same type should not be used in the same stage",
    url: `${DOCS}multiple-instructions-disallowed/`,
    format: (instructionName: string) =>
      `Multiple ${instructionName} instructions should not be used in the same stage because only the last one will be used`,
  },
  LegacyKeyValueFormat: {
    name: "LegacyKeyValueFormat",
    description: "Legacy key/value format with whitespace separator should not be used",
    url: `${DOCS}legacy-key-value-format/`,
    format: (cmdName: string) =>
      `"${cmdName} key=value" should be used instead of legacy "${cmdName} key value" format`,
  },
  InvalidBaseImagePlatform: {
    name: "InvalidBaseImagePlatform",
    description: "Base image platform does not match expected target platform",
    url: "",
    format: (image: string, expected: string, actual: string) =>
      `Base image ${image} was pulled with platform ${q(actual)}, expected ${q(expected)} for current build`,
  },
  RedundantTargetPlatform: {
    name: "RedundantTargetPlatform",
    description:
      "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
    url: `${DOCS}redundant-target-platform/`,
    format: (platformVar: string) =>
      `Setting platform to predefined ${platformVar} in FROM is redundant as this is the default behavior`,
  },
  SecretsUsedInArgOrEnv: {
    name: "SecretsUsedInArgOrEnv",
    description: "Sensitive data should not be used in the ARG or ENV commands",
    url: `${DOCS}secrets-used-in-arg-or-env/`,
    format: (instruction: string, secretKey: string) =>
      `Do not use ARG or ENV instructions for sensitive data (${instruction} ${q(secretKey)})`,
  },
  InvalidDefaultArgInFrom: {
    name: "InvalidDefaultArgInFrom",
    description: "Default value for global ARG results in an empty or invalid base image name",
    url: `${DOCS}invalid-default-arg-in-from/`,
    format: (baseName: string) =>
      `Default value for ARG ${baseName} results in empty or invalid base image name`,
  },
  FromPlatformFlagConstDisallowed: {
    name: "FromPlatformFlagConstDisallowed",
    description: "FROM --platform flag should not use a constant value",
    url: `${DOCS}from-platform-flag-const-disallowed/`,
    format: (platform: string) => `FROM --platform flag should not use constant value ${q(platform)}`,
  },
  CopyIgnoredFile: {
    name: "CopyIgnoredFile",
    description: "Attempting to Copy file that is excluded by .dockerignore",
    url: `${DOCS}copy-ignored-file/`,
    format: (cmd: string, file: string) =>
      `Attempting to ${cmd} file ${q(file)} that is excluded by .dockerignore`,
  },
  InvalidDefinitionDescription: {
    name: "InvalidDefinitionDescription",
    description:
      "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.",
    url: `${DOCS}invalid-definition-description/`,
    experimental: true,
    format: (instruction: string, defName: string) =>
      `Comment for ${instruction} should follow the format: \`# ${defName} <description>\``,
  },
  ExposeProtoCasing: {
    name: "ExposeProtoCasing",
    description: "Protocol in EXPOSE instruction should be lowercase",
    url: `${DOCS}expose-proto-casing/`,
    format: (port: string) => `Defined protocol '${port}' in EXPOSE instruction should be lowercase`,
  },
  ExposeInvalidFormat: {
    name: "ExposeInvalidFormat",
    description:
      "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release",
    url: `${DOCS}expose-invalid-format/`,
    format: (port: string) =>
      `EXPOSE instruction should not define an IP address or host-port mapping, found '${port}'`,
  },
} as const satisfies Record<string, LintRule<never[]>>;

export type RuleName = keyof typeof Rules;

/** Every rule, by name. */
export const ALL_RULES: readonly LintRule<never[]>[] = Object.values(Rules);

export function ruleByName(name: string): LintRule<never[]> | undefined {
  return (Rules as Record<string, LintRule<never[]>>)[name];
}
