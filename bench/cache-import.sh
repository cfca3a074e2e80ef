#!/usr/bin/env bash
# A fresh builder importing a registry cache against a cold build on that same (emptied) builder:
# the chain case (20 RUN steps) is built once with --cache-to type=registry,mode=max; then, several
# times each, (a) a cold build with an empty state and (b) a build with an empty state and
# --cache-from. Prints both median times and the ratio import/cold (target ≤ 0.3).
# Needs the test world (test/world/up), hyperfine and a current build (npm run build), or KILN_BIN
# naming another kiln command. Usage: bench/cache-import.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
case_dir=${KILN_BENCH_CASES:-$repo/../shared/bench/cases}/chain
RUNS=${RUNS:-5}
# shellcheck disable=SC1091
. "$repo/test/world/env"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
state=$work/state
# A tag per run: the cache is this run's, not one an earlier run left in the registry.
ref=$KILN_TEST_REGISTRY/kiln-bench/cache-import:$(date +%s)
kiln="env KILN_STATE=$state ${KILN_BIN:-$repo/bin/kiln} build -q --build-context busybox=docker-image://$KILN_TEST_BUSYBOX -f $case_dir/Dockerfile"

median() { python3 -c "import json,sys;print('%.3f'%json.load(open(sys.argv[1]))['results'][0]['median'])" "$1"; }

rm -rf "$state"
$kiln --cache-to "type=registry,ref=$ref,mode=max" "$case_dir" >/dev/null 2>&1
# Both timed builds start from an empty builder; the base image pull is in both.
hyperfine -N --runs "$RUNS" --prepare "rm -rf $state" --export-json "$work/cold.json" \
  "$kiln $case_dir" >/dev/null 2>&1
hyperfine -N --runs "$RUNS" --prepare "rm -rf $state" --export-json "$work/import.json" \
  "$kiln --cache-from type=registry,ref=$ref $case_dir" >/dev/null 2>&1
cold=$(median "$work/cold.json")
imported=$(median "$work/import.json")
ratio=$(python3 -c "import sys;print('%.2f'%(float(sys.argv[1])/float(sys.argv[2])))" "$imported" "$cold")
printf 'chain cold %ss  fresh builder + registry cache %ss  ratio %s (target <= 0.3)\n' "$cold" "$imported" "$ratio"
