import assert from "node:assert/strict";
import {
  type AddInstruction,
  type ArgInstruction,
  type CmdInstruction,
  type CopyInstruction,
  DockerfileError,
  type EntrypointInstruction,
  type EnvInstruction,
  type ExposeInstruction,
  expandRunMounts,
  type FromInstruction,
  type HealthcheckInstruction,
  type Instruction,
  type LabelInstruction,
  type LintFinding,
  type MaintainerInstruction,
  type OnbuildInstruction,
  parseGoDuration,
  parseInstruction,
  parseInstructions,
  parseMount,
  type RunInstruction,
  type ShellInstruction,
  type StopSignalInstruction,
  type UserInstruction,
  type VolumeInstruction,
  type WorkdirInstruction,
} from "../../../src/frontend/dockerfile/instructions/index.js";
import { csvFields, ramInBytes } from "../../../src/frontend/dockerfile/instructions/mount.js";
import { parseDockerfile } from "../../../src/frontend/dockerfile/parser/index.js";
import { envsFromSlice, ShellLex } from "../../../src/frontend/dockerfile/shell/index.js";

/** Parses a one-instruction Dockerfile (after an optional FROM) into its instruction. */
function one<T extends Instruction>(line: string): T {
  const r = parseDockerfile(line);
  return parseInstruction(r.ast.children[r.ast.children.length - 1]!, {
    lines: r.lines,
    escapeToken: r.escapeToken,
  }) as T;
}

function fails(line: string, message: RegExp | string, check?: (e: DockerfileError) => void): void {
  assert.throws(
    () => {
      const r = parseDockerfile(line);
      parseInstructions(r);
    },
    (e: unknown) => {
      assert.ok(e instanceof DockerfileError, `expected DockerfileError, got ${String(e)}`);
      if (typeof message === "string")
        assert.ok(e.message.includes(message), `${e.message} lacks ${message}`);
      else assert.match(e.message, message);
      check?.(e);
      return true;
    },
    line,
  );
}

const FROM = "FROM scratch\n";

describe("Dockerfile instructions", () => {
  describe("common", () => {
    it("carry keyword, location, original text, comments and flags", () => {
      const r = parseDockerfile("FROM a\n# about x\nRun --network=none \\\n  echo hi\n");
      const run = parseInstruction(r.ast.children[1]!) as RunInstruction;
      assert.equal(run.kind, "run");
      assert.equal(run.keyword, "Run");
      assert.deepEqual(run.location, { startLine: 3, endLine: 4 });
      assert.equal(run.original, "Run --network=none   echo hi");
      assert.deepEqual(run.comments, ["about x"]);
      assert.deepEqual(run.flags, ["--network=none"]);
      assert.equal(run.node, r.ast.children[1]);
    });

    it("suggest the nearest instruction for an unknown one", () => {
      fails(FROM + "RUNN echo", "unknown instruction: RUNN", (e) => {
        assert.equal(e.suggestion, "did you mean RUN?");
        assert.equal(e.line, 2);
        assert.equal(e.lineText, "RUNN echo");
        assert.match(
          e.format(),
          /^Dockerfile:2\n-+\n {4}2 \| RUNN echo\n-+\nunknown instruction: RUNN\ndid you mean RUN\?$/,
        );
      });
      fails(FROM + "copyy a b", "unknown instruction: copyy", (e) =>
        assert.equal(e.suggestion, "did you mean copy?"),
      );
      fails(FROM + "FOOBAR bar", "unknown instruction: FOOBAR", (e) => assert.equal(e.suggestion, undefined));
    });

    it("reject unknown flags, listing the ones that exist", () => {
      fails(FROM + "COPY --form=build a b", "unknown flag: --form", (e) => {
        assert.match(
          e.suggestion!,
          /^did you mean from\? COPY accepts --chmod, --chown, --exclude, --from, --link, --parents$/,
        );
      });
      fails(FROM + "MAINTAINER --boo joe@example.com", "unknown flag: --boo", (e) =>
        assert.equal(e.suggestion, "MAINTAINER takes no flags"),
      );
      fails(FROM + "ENV --x a=b", "unknown flag: --x");
    });

    it("check flag values", () => {
      fails(FROM + "COPY --from a b", "missing a value on flag: --from");
      fails(FROM + "COPY --link= a b", "missing a value on flag: --link");
      fails(FROM + "COPY --link=yes a b", "expecting boolean value for flag --link, not: yes");
      fails(FROM + "COPY --from=a --from=b a b", "duplicate flag specified: --from");
      fails(FROM + "COPY --exclude a b", "missing a value on flag: --exclude");
      assert.deepEqual(one<CopyInstruction>(FROM + "COPY --exclude=a --exclude=b x y").exclude, ["a", "b"]);
      assert.equal(one<CopyInstruction>(FROM + "COPY --link=TRUE x y").link, true);
      assert.equal(one<CopyInstruction>(FROM + "COPY --link=false x y").link, false);
    });

    it("group instructions into stages, with meta ARGs before the first FROM", () => {
      const r = parseDockerfile(
        "ARG V=1\nARG W\nFROM a:$V AS Base\nARG X\nRUN x\nFROM base\nCOPY --from=base / /\n",
      );
      const d = parseInstructions(r);
      assert.equal(d.metaArgs.length, 2);
      assert.deepEqual(
        d.stages.map((s) => [s.name, s.from.image, s.commands.map((c) => c.kind)]),
        [
          ["base", "a:$V", ["arg", "run"]],
          ["", "base", ["copy"]],
        ],
      );
      fails("RUN x\nFROM a", "no build stage in current context", (e) => assert.equal(e.line, 1));
    });

    it("take doc comments for stages and ARGs", () => {
      const r = parseDockerfile(
        "# foo sets foo\nARG foo=bar\n\n# base defines first stage\nFROM busybox AS base\n# this is irrelevant\nARG foo\n# bar defines bar\n# baz is something else\nARG bar baz=123\n",
      );
      const d = parseInstructions(r);
      assert.equal(d.stages[0]!.from.docComment, "defines first stage");
      assert.equal(d.metaArgs[0]!.args[0]!.docComment, "sets foo");
      const [a1, a2] = d.stages[0]!.commands as ArgInstruction[];
      assert.equal(a1!.args[0]!.docComment, "");
      assert.deepEqual(
        a2!.args.map((a) => [a.key, a.value, a.docComment]),
        [
          ["bar", undefined, "defines bar"],
          ["baz", "123", "is something else"],
        ],
      );
    });

    it("report lint findings", () => {
      const found: LintFinding[] = [];
      const r = parseDockerfile("from a AS Build\nMAINTAINER me\n# wrong\nARG x\n");
      parseInstructions(r, { onLint: (f) => found.push(f) });
      assert.deepEqual(
        found.map((f) => [f.rule, f.message, f.location.startLine]),
        [
          ["StageNameCasing", "Stage name 'Build' should be lowercase", 1],
          ["FromAsCasing", "'AS' and 'from' keywords' casing do not match", 1],
          ["MaintainerDeprecated", "Maintainer instruction is deprecated in favor of using label", 2],
          [
            "InvalidDefinitionDescription",
            "Comment for ARG should follow the format: `# x <description>`",
            4,
          ],
        ],
      );
    });
  });

  describe("FROM", () => {
    it("parses image, stage name and platform", () => {
      const f = one<FromInstruction>("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build-1");
      assert.equal(f.image, "golang:1.22");
      assert.equal(f.platform, "$BUILDPLATFORM");
      assert.equal(f.stageName, "build-1");
      assert.equal(f.stageNameOriginal, "Build-1");
      assert.equal(f.asKeyword, "AS");
      // Go's EqualFold: the long s folds to s
      assert.equal(one<FromInstruction>("FROM a a\u017f b").stageName, "b");
      const g = one<FromInstruction>("from alpine");
      assert.equal(g.stageName, undefined);
      assert.equal(g.platform, undefined);
    });

    it("rejects bad stage names and argument counts", () => {
      fails(
        "FROM a AS 1st",
        'invalid name for build stage: "1st", name can\'t start with a number or contain symbols',
      );
      fails("FROM a AS b$c", "invalid name for build stage");
      fails("FROM a b", "FROM requires either one or three arguments");
      fails("FROM a foo b", "FROM requires either one or three arguments");
      fails("FROM", "FROM requires either one or three arguments");
      fails("FROM --plaform=x a", "unknown flag: --plaform");
    });
  });

  describe("RUN", () => {
    it("parses shell and exec forms", () => {
      const s = one<RunInstruction>(FROM + "RUN echo $HOME   done");
      assert.deepEqual(s.command, { form: "shell", text: "echo $HOME   done" });
      assert.deepEqual(s.cmdLine, ["echo $HOME   done"]);
      assert.equal(s.prependShell, true);
      const e = one<RunInstruction>(FROM + 'RUN ["echo", "a b"]');
      assert.deepEqual(e.command, { form: "exec", args: ["echo", "a b"] });
      assert.equal(e.prependShell, false);
      assert.equal(e.network, "default");
      assert.equal(e.security, "sandbox");
      assert.deepEqual(e.mounts, []);
    });

    it("parses network, security and device flags", () => {
      const r = one<RunInstruction>(
        FROM + "RUN --network=none --security=insecure --device=/dev/fuse,required x",
      );
      assert.equal(r.network, "none");
      assert.equal(r.security, "insecure");
      assert.deepEqual(r.devices, [{ name: "/dev/fuse", required: true }]);
      assert.deepEqual(r.flagsUsed, ["network", "security", "device"]);
      fails(FROM + "RUN --network=bridge x", 'invalid network mode "bridge"');
      fails(FROM + "RUN --security=privileged x", 'security "privileged" is not valid');
      assert.deepEqual(one<RunInstruction>(FROM + "RUN --device=name=foo,required=false x").devices, [
        { name: "foo", required: false },
      ]);
      fails(FROM + "RUN --device=a,b x", "invalid field 'b' must be a key=value pair");
      fails(FROM + "RUN --device=name=a,name=b x", "device name already set to a");
    });

    it("parses heredocs as inline files", () => {
      const r = one<RunInstruction>(FROM + "RUN <<EOF bash\necho $X\nEOF\n");
      assert.deepEqual(r.heredocs, [
        { name: "EOF", data: "echo $X\n", chomp: false, expand: true, fileDescriptor: 0 },
      ]);
      assert.deepEqual(r.command, { form: "shell", text: "<<EOF bash" });
      assert.deepEqual(r.location, { startLine: 2, endLine: 4 });
    });

    it("reports which flags were used", () => {
      assert.deepEqual(one<RunInstruction>("RUN --mount=type=tmpfs,target=/foo/ echo hello").flagsUsed, [
        "mount",
      ]);
    });
  });

  describe("RUN --mount", () => {
    it("parses every mount type with its options", () => {
      const r = one<RunInstruction>(
        FROM +
          "RUN --mount=type=cache,target=/root/.cache,id=go,sharing=locked,mode=0700,uid=1000,gid=1000,from=base,source=/c,rw " +
          "--mount=type=bind,src=/x,dst=/y " +
          "--mount=type=tmpfs,destination=/t,size=64m " +
          "--mount=type=secret,id=tok,target=/run/secrets/tok,required,env=TOKEN,mode=0400 " +
          "--mount=type=ssh,required=false " +
          "--mount=target=/ro,readonly=false x",
      );
      const [cache, bind, tmpfs, secret, ssh, plain] = r.mounts;
      assert.deepEqual(cache, {
        type: "cache",
        from: "base",
        source: "/c",
        target: "/root/.cache",
        readOnly: false,
        sizeLimit: 0,
        id: "go",
        sharing: "locked",
        required: false,
        env: undefined,
        mode: 0o700,
        uid: 1000,
        gid: 1000,
      });
      assert.equal(bind!.type, "bind");
      assert.equal(bind!.source, "/x");
      assert.equal(bind!.target, "/y");
      assert.equal(bind!.readOnly, true);
      assert.equal(tmpfs!.sizeLimit, 64 * 1024 * 1024);
      assert.equal(tmpfs!.readOnly, false);
      assert.equal(secret!.required, true);
      assert.equal(secret!.env, "TOKEN");
      assert.equal(secret!.mode, 0o400);
      assert.equal(secret!.readOnly, true);
      assert.equal(ssh!.type, "ssh");
      assert.equal(ssh!.required, false);
      assert.equal(plain!.readOnly, false);
      assert.equal(r.mountSpecs.length, 6);
    });

    it("accepts ro/readonly/rw/readwrite with and without values, case-insensitive keys", () => {
      assert.equal(parseMount("target=/a,ro", (w) => w).readOnly, true);
      assert.equal(parseMount("type=cache,target=/a,readonly", (w) => w).readOnly, true);
      assert.equal(parseMount("target=/a,rw=true", (w) => w).readOnly, false);
      assert.equal(parseMount("target=/a,readwrite=0", (w) => w).readOnly, true);
      assert.equal(parseMount("TYPE=Cache,Target=/a", (w) => w).type, "cache");
    });

    it("rejects bad specs with BuildKit's messages", () => {
      const bad: [string, string][] = [
        ["type=volume,target=/a", 'unsupported mount type "volume"'],
        ["type=bnd,target=/a", 'unsupported mount type "bnd" (did you mean bind?)'],
        ["type=cache,target=/a,sharing=all", 'unsupported sharing value "all"'],
        ["type=bind,target=/a,mode=0755", 'mode not allowed for "bind" type mounts'],
        ["type=tmpfs,target=/a,uid=1", 'uid not allowed for "tmpfs" type mounts'],
        ["type=bind,target=/a,gid=1", 'gid not allowed for "bind" type mounts'],
        ["type=cache,target=/a,mode=999", "invalid value 999 for mode"],
        ["type=cache,target=/a,uid=-1", "invalid value -1 for uid"],
        ["type=cache,target=/a,gid=x", "invalid value x for gid"],
        ["type=bind,target=/a,required", "unexpected key 'required' for mount type 'bind'"],
        ["type=cache,target=/a,required=true", "unexpected key 'required' for mount type 'cache'"],
        ["type=cache,target=/a,size=1m", "unexpected key 'size' for mount type 'cache'"],
        ["type=tmpfs,target=/a,size=big", "invalid value for size: big"],
        ["target=/a,ro=maybe", "invalid value for ro: maybe"],
        ["target=/a,rw=maybe", "invalid value for rw: maybe"],
        ["type=secret,id=a,required=maybe", "invalid value for required: maybe"],
        ["type=secret,from=x,id=a", "secret mount should not have a from"],
        ["type=secret,id=a,sharing=shared", "secret mount should not define sharing"],
        ["type=secret", "invalid secret mount. one of source, target required"],
        ["type=secret,id=a,source=b", "both source and id can't be set"],
        ["type=bind,target=/a,sharing=shared", "invalid cache sharing set for bind mount"],
        ["target=/a,foo=bar", "unexpected key 'foo' in 'foo=bar'"],
        ["target=/a,tagret=b", "unexpected key 'tagret' in 'tagret=b' (did you mean target?)"],
        ["target=/a,bogus", "invalid field 'bogus' must be a key=value pair"],
        [
          '"target=/a',
          'failed to parse csv mounts: parse error on line 1, column 2: extraneous or missing " in quoted-field',
        ],
        [
          '"target=/a"x',
          'failed to parse csv mounts: parse error on line 1, column 11: extraneous or missing " in quoted-field',
        ],
        [
          'target="/a',
          'failed to parse csv mounts: parse error on line 1, column 8: bare " in non-quoted-field',
        ],
        [
          'target=/a"b',
          'failed to parse csv mounts: parse error on line 1, column 10: bare " in non-quoted-field',
        ],
        ["", "failed to parse csv mounts: EOF"],
      ];
      for (const [spec, message] of bad) {
        assert.throws(
          () => parseMount(spec, (w) => w),
          (e: unknown) => e instanceof DockerfileError && e.message.startsWith(message),
          `${spec} → ${message}`,
        );
        // (quotes in a flag are taken by the flag splitter, so only plain specs go through a RUN)
        if (!spec.includes('"'))
          fails(`${FROM}RUN --mount=${spec} true`, message, (e) => assert.equal(e.line, 2));
      }
    });

    it("defers specs with variables to the converter, checking only what BuildKit checks early", () => {
      const r = one<RunInstruction>(FROM + "RUN --mount=type=$T,target=$DIR,mode=$MODE x");
      assert.deepEqual(r.mountSpecs, ["type=$T,target=$DIR,mode=$MODE"]);
      fails(
        FROM + "RUN --mount=from=$STAGE,target=/a x",
        "'from' doesn't support variable expansion, define alias stage instead",
      );
      // a trailing $ is not a variable
      assert.equal(one<RunInstruction>(FROM + "RUN --mount=from=a$,target=/a x").mounts[0]!.from, "a$");
      const lex = new ShellLex("\\");
      const env = envsFromSlice(["T=cache", "DIR=/cache", "MODE=0755"]);
      const mounts = expandRunMounts(r, (w) => lex.processWord(w, env));
      assert.equal(mounts[0]!.type, "cache");
      assert.equal(mounts[0]!.target, "/cache");
      assert.equal(mounts[0]!.mode, 0o755);
      const badEnv = envsFromSlice(["T=cache", "DIR=/cache", "MODE=rwx"]);
      assert.throws(
        () => expandRunMounts(r, (w) => lex.processWord(w, badEnv)),
        (e: unknown) =>
          e instanceof DockerfileError && e.line === 2 && /invalid value rwx for mode/.test(e.message),
      );
    });

    it("processes quotes in literal specs as the later expansion will", () => {
      const r = one<RunInstruction>(FROM + `RUN --mount=type=bind,"target=/a b" x`);
      assert.equal(r.mounts[0]!.target, "/a b");
      const q = one<RunInstruction>(FROM + `RUN --mount=type=bind,target='/c d' x`);
      assert.equal(q.mounts[0]!.target, "/c d");
    });

    it("parses CSV as encoding/csv", () => {
      assert.deepEqual(csvFields('a,"b,c",d'), ["a", "b,c", "d"]);
      assert.deepEqual(csvFields('"a""b",'), ['a"b', ""]);
      assert.deepEqual(csvFields("a\n"), ["a"]);
    });

    it("parses sizes as go-units RAMInBytes", () => {
      assert.equal(ramInBytes("100"), 100);
      assert.equal(ramInBytes("1k"), 1024);
      assert.equal(ramInBytes("1KiB"), 1024);
      assert.equal(ramInBytes("1.5g"), 1.5 * 1024 ** 3);
      assert.equal(ramInBytes("10 MB"), 10 * 1024 * 1024);
      assert.equal(ramInBytes("1b"), 1);
      assert.equal(ramInBytes("1x"), undefined);
      assert.equal(ramInBytes("1kbb"), undefined);
      assert.equal(ramInBytes("-1"), undefined);
      assert.equal(ramInBytes("m"), undefined);
    });
  });

  describe("COPY and ADD", () => {
    it("parse sources, destination and COPY's flags", () => {
      const c = one<CopyInstruction>(
        FROM + "COPY --from=build --chown=1:2 --chmod=0644 --link --parents --exclude=*.md a b /dst/",
      );
      assert.deepEqual(c.sources, ["a", "b"]);
      assert.equal(c.dest, "/dst/");
      assert.equal(c.from, "build");
      assert.equal(c.chown, "1:2");
      assert.equal(c.chmod, "0644");
      assert.equal(c.link, true);
      assert.equal(c.parents, true);
      assert.deepEqual(c.exclude, ["*.md"]);
      const j = one<CopyInstruction>(FROM + 'COPY ["a b", "/c d/"]');
      assert.deepEqual([j.sources, j.dest], [["a b"], "/c d/"]);
    });

    it("parse ADD's flags", () => {
      const a = one<AddInstruction>(
        FROM + "ADD --checksum=sha256:abc --keep-git-dir --unpack=false --chown=u https://x/y.tgz /z",
      );
      assert.equal(a.checksum, "sha256:abc");
      assert.equal(a.keepGitDir, true);
      assert.equal(a.unpack, false);
      assert.equal(a.chown, "u");
      assert.equal(a.link, false);
      const b = one<AddInstruction>(FROM + "ADD a b");
      assert.equal(b.keepGitDir, undefined);
      assert.equal(b.unpack, undefined);
      fails(FROM + "ADD --from=x a b", "unknown flag: --from");
      fails(FROM + "COPY --checksum=x a b", "unknown flag: --checksum");
    });

    it("require a destination", () => {
      for (const c of ["ADD", "COPY"]) {
        fails(
          `${FROM}${c} arg1`,
          `${c} requires at least two arguments, but only one was provided. Destination could not be determined`,
        );
      }
      fails(FROM + "COPY\t\n\t\tquux \\\n      bar", "COPY requires at least two arguments");
    });

    it("take heredoc sources, chomped for <<-", () => {
      const c = one<CopyInstruction>(
        FROM + "COPY <<EOF1 <<-EOF2 foo.txt /bar\nfirst\nEOF1\n\tsecond\nEOF2\n",
      );
      assert.deepEqual(c.sources, ["foo.txt"]);
      assert.deepEqual(c.heredocs, [
        { path: "EOF1", data: "first\n", expand: true },
        { path: "EOF2", data: "second\n", expand: true },
      ]);
      assert.equal(one<CopyInstruction>(FROM + "COPY <<'EOF' /q\n\"x\"\nEOF\n").heredocs[0]!.expand, false);
      fails(FROM + "COPY /foo <<EOF\nEOF", "COPY cannot accept a heredoc as a destination");
    });
  });

  describe("ENV, LABEL, ARG", () => {
    it("parse pairs in both forms", () => {
      const e = one<EnvInstruction>(FROM + 'ENV a=1 b="x y"');
      assert.deepEqual(e.pairs, [
        { key: "a", value: "1", noDelim: false },
        { key: "b", value: '"x y"', noDelim: false },
      ]);
      assert.deepEqual(one<EnvInstruction>(FROM + "ENV a b c").pairs, [
        { key: "a", value: "b c", noDelim: true },
      ]);
      assert.deepEqual(one<LabelInstruction>(FROM + "LABEL a=b").pairs, [
        { key: "a", value: "b", noDelim: false },
      ]);
    });

    it("reject missing and blank names", () => {
      fails(FROM + "ENV", "ENV requires at least one argument");
      fails(FROM + "LABEL", "LABEL requires at least one argument");
      fails(FROM + "ENV =x", "ENV names can not be blank");
      fails(FROM + "LABEL =x", "LABEL names can not be blank");
      fails(FROM + "ARG =x", "ARG names can not be blank");
      fails(FROM + "ARG", "ARG requires at least one argument");
    });

    it("parse ARG names with optional defaults", () => {
      const a = one<ArgInstruction>(FROM + 'ARG a b= c=d e="f g"');
      assert.deepEqual(
        a.args.map((x) => [x.key, x.value]),
        [
          ["a", undefined],
          ["b", ""],
          ["c", "d"],
          ["e", '"f g"'],
        ],
      );
    });
  });

  describe("CMD, ENTRYPOINT, SHELL", () => {
    it("parse both forms", () => {
      assert.deepEqual(one<CmdInstruction>(FROM + "CMD echo hi").command, { form: "shell", text: "echo hi" });
      assert.deepEqual(one<CmdInstruction>(FROM + 'CMD ["a"]').command, { form: "exec", args: ["a"] });
      assert.deepEqual(one<CmdInstruction>(FROM + "CMD []").cmdLine, []);
      assert.deepEqual(one<EntrypointInstruction>(FROM + "ENTRYPOINT []").command, {
        form: "exec",
        args: [],
      });
      assert.deepEqual(one<EntrypointInstruction>(FROM + "ENTRYPOINT /x y").cmdLine, ["/x y"]);
    });

    it("require SHELL in JSON form", () => {
      assert.deepEqual(one<ShellInstruction>(FROM + 'SHELL ["bash", "-c"]').shell, ["bash", "-c"]);
      fails(FROM + "SHELL bash -c", "SHELL requires the arguments to be in JSON form");
      fails(FROM + "SHELL []", "SHELL requires at least one argument");
    });
  });

  describe("single-argument instructions", () => {
    it("parse WORKDIR, USER, STOPSIGNAL, MAINTAINER", () => {
      assert.equal(one<WorkdirInstruction>(FROM + "WORKDIR /a b").path, "/a b");
      assert.equal(one<UserInstruction>(FROM + "USER 1000:1000").user, "1000:1000");
      assert.equal(one<StopSignalInstruction>(FROM + "STOPSIGNAL SIGKILL").signal, "SIGKILL");
      assert.equal(one<MaintainerInstruction>(FROM + "MAINTAINER Jane <j@x>").maintainer, "Jane <j@x>");
    });

    it("require their argument", () => {
      for (const c of ["MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL"]) {
        fails(`${FROM}${c}`, `${c} requires exactly one argument`);
      }
    });
  });

  describe("EXPOSE and VOLUME", () => {
    it("parse lists; EXPOSE sorted", () => {
      assert.deepEqual(one<ExposeInstruction>(FROM + "EXPOSE 8080 443/tcp 80").ports, [
        "443/tcp",
        "80",
        "8080",
      ]);
      assert.deepEqual(one<VolumeInstruction>(FROM + 'VOLUME ["/a", "/b"]').volumes, ["/a", "/b"]);
      assert.deepEqual(one<VolumeInstruction>(FROM + "VOLUME /c /d").volumes, ["/c", "/d"]);
    });

    it("reject empty lists and empty volumes", () => {
      fails(FROM + "EXPOSE", "EXPOSE requires at least one argument");
      fails(FROM + "VOLUME", "VOLUME requires at least one argument");
      fails(FROM + 'VOLUME ["/a", " "]', "VOLUME specified can not be an empty string");
    });
  });

  describe("HEALTHCHECK", () => {
    it("parses CMD with options, shell form as CMD-SHELL", () => {
      const h = one<HealthcheckInstruction>(
        FROM +
          "HEALTHCHECK --interval=5s --timeout=1m30s --start-period=100ms --start-interval=1s --retries=4 CMD curl -f x",
      );
      assert.equal(h.none, false);
      assert.deepEqual(h.health, {
        test: ["CMD-SHELL", "curl -f x"],
        interval: 5e9,
        timeout: 90e9,
        startPeriod: 100e6,
        startInterval: 1e9,
        retries: 4,
      });
      assert.deepEqual(one<HealthcheckInstruction>(FROM + 'HEALTHCHECK CMD ["a", "b"]').health.test, [
        "CMD",
        "a",
        "b",
      ]);
      assert.deepEqual(one<HealthcheckInstruction>(FROM + "HEALTHCHECK cmd hello world").health.test, [
        "CMD-SHELL",
        "hello world",
      ]);
    });

    it("parses NONE", () => {
      const h = one<HealthcheckInstruction>(FROM + "HEALTHCHECK NONE");
      assert.equal(h.none, true);
      assert.deepEqual(h.health.test, ["NONE"]);
      fails(FROM + "HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments");
    });

    it("rejects bad input", () => {
      fails(FROM + "HEALTHCHECK", "HEALTHCHECK requires at least one argument");
      fails(FROM + "HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD");
      fails(FROM + "HEALTHCHECK CONNECT TCP 7000", 'Unknown type "CONNECT" in HEALTHCHECK (try CMD)');
      fails(FROM + "HEALTHCHECK --interval=50ns CMD x", 'Interval "interval" cannot be less than 1ms');
      fails(FROM + "HEALTHCHECK --timeout=5 CMD x", 'time: missing unit in duration "5"');
      fails(FROM + "HEALTHCHECK --timeout=5y CMD x", 'time: unknown unit "y" in duration "5y"');
      fails(FROM + "HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)");
      fails(FROM + "HEALTHCHECK --retries=x CMD x", 'strconv.ParseInt: parsing "x": invalid syntax');
      fails(FROM + "HEALTHCHECK --intervall=5s CMD x", "unknown flag: --intervall");
      assert.equal(one<HealthcheckInstruction>(FROM + "HEALTHCHECK --interval=0ms CMD x").health.interval, 0);
      assert.equal(
        one<HealthcheckInstruction>(FROM + "HEALTHCHECK --interval=1ms CMD x").health.interval,
        1e6,
      );
    });

    it("parses Go durations", () => {
      assert.equal(parseGoDuration("1h2m3.5s"), 3723.5e9);
      assert.equal(parseGoDuration("1.5µs"), 1500);
      assert.equal(parseGoDuration("-2ms"), -2e6);
      assert.equal(parseGoDuration("0"), 0);
      assert.equal(parseGoDuration(".5s"), 0.5e9);
      for (const bad of ["", "s", ".s", "1", "1x", "+", "9999999999999999999h"]) {
        assert.throws(() => parseGoDuration(bad), bad);
      }
    });
  });

  describe("ONBUILD", () => {
    it("keeps the trigger expression", () => {
      assert.equal(one<OnbuildInstruction>(FROM + "ONBUILD RUN echo hi").expression, "RUN echo hi");
      assert.equal(one<OnbuildInstruction>(FROM + "onbuild  copy a b").expression, "copy a b");
      assert.equal(
        one<OnbuildInstruction>(FROM + "ONBUILD RUN <<EOF\necho hi\nEOF\n").expression,
        "RUN <<EOF\necho hi\nEOF",
      );
    });

    it("rejects forbidden triggers", () => {
      fails(FROM + "ONBUILD", "ONBUILD requires at least one argument");
      fails(
        FROM + "ONBUILD ONBUILD RUN touch foobar",
        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
      );
      fails(FROM + "ONBUILD FROM scratch", "FROM isn't allowed as an ONBUILD trigger");
      fails(FROM + "ONBUILD maintainer me", "MAINTAINER isn't allowed as an ONBUILD trigger");
    });
  });
});
