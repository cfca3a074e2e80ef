#!/usr/bin/env bash
# Kiln against BuildKit (dockerd 20.10's, through the Debian docker client) on the shared cases,
# in the same run: median seconds of each and the ratio Kiln/BuildKit. Needs the test world
# (test/world/up) and hyperfine. Usage: bench/compare.sh [case…]  (default: chain parallel skip bigctx)
# bigctx-dc runs the bigctx case on a docker-container builder created for the run (removed after).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cases_dir=${KILN_BENCH_CASES:-$repo/../shared/bench/cases}
RUNS=${RUNS:-5}
# shellcheck disable=SC1091
. "$repo/test/world/env"
export KILN_STATE=${KILN_STATE:-/tmp/kiln-bench-state}
kiln="$repo/bin/kiln build -q --build-context busybox=docker-image://$KILN_TEST_BUSYBOX"
buildkit="env DOCKER_BUILDKIT=1 /usr/bin/docker build -q"
work=$(mktemp -d)
dc_builder=""
cleanup() {
  [ -z "$dc_builder" ] || DOCKER_CONFIG=$work/docker-config "$repo/bin/kiln" rm "$dc_builder" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

median() { python3 -c "import json,sys;print('%.3f'%json.load(open(sys.argv[1]))['results'][0]['median'])" "$1"; }
ratio() { python3 -c "import sys;print('%.2f'%(float(sys.argv[1])/float(sys.argv[2])))" "$1" "$2"; }
time_cmd() { # NAME COMMAND [hyperfine args…] → prints median
  local name=$1 cmd=$2; shift 2
  hyperfine -N -i --runs "$RUNS" --warmup 1 "$@" --export-json "$work/$name.json" "$cmd" >/dev/null 2>&1
  median "$work/$name.json"
}
max_rss_mb() { # COMMAND... -> the peak resident memory of one run, in MB (the engine runs in the kiln process)
  /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%.0f", $1/1024}'
}
report() { # CASE KILN_S BUILDKIT_S [note]
  printf '%-16s kiln %7ss  buildkit %7ss  ratio %s %s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")" "${4:-}"
}

for c in "${@:-chain parallel skip bigctx}"; do
  for case in $c; do
    case $case in
      chain|parallel|skip)
        k=$(time_cmd "kiln-$case" "$kiln --no-cache -f $cases_dir/$case/Dockerfile $cases_dir/$case")
        b=$(time_cmd "bk-$case" "$buildkit --no-cache -f $cases_dir/$case/Dockerfile $cases_dir/$case")
        report "$case cold" "$k" "$b" "(kiln peak RSS $(max_rss_mb $kiln --no-cache -f "$cases_dir/$case/Dockerfile" "$cases_dir/$case") MB)"
        ;;
      bigctx|bigctx-dc)
        ctx=${BIGCTX:-/tmp/bigctx-data}
        [ -d "$ctx" ] || sh "$cases_dir/gen-bigctx.sh" "$ctx"
        cp "$cases_dir/bigctx/Dockerfile" "$ctx/Dockerfile"
        k_build=$kiln
        if [ "$case" = bigctx-dc ]; then
          # A running docker-container builder (bootstrapped outside the timings), as a team would keep one.
          dc_builder=kilnbench$$
          DOCKER_CONFIG=$work/docker-config "$repo/bin/kiln" create --driver docker-container \
            --driver-opt network=host --name "$dc_builder" --bootstrap >/dev/null
          k_build="env DOCKER_CONFIG=$work/docker-config $kiln --builder $dc_builder"
        fi
        $k_build "$ctx" >/dev/null 2>&1; $buildkit "$ctx" >/dev/null 2>&1
        k=$(time_cmd "kiln-noop-$case" "$k_build $ctx")
        b=$(time_cmd "bk-noop-$case" "$buildkit $ctx")
        report "$case noop" "$k" "$b"
        k=$(time_cmd "kiln-one-$case" "$k_build $ctx" --prepare "sh -c 'date +%s%N > $ctx/dir7/touched.txt'")
        b=$(time_cmd "bk-one-$case" "$buildkit $ctx" --prepare "sh -c 'date +%s%N > $ctx/dir7/touched.txt'")
        if [ "$case" = bigctx ]; then
          report "$case onefile" "$k" "$b" "(kiln peak RSS $(max_rss_mb $kiln "$ctx") MB)"
        else
          report "$case onefile" "$k" "$b" "(engine in container kiln_engine_$dc_builder)"
        fi
        ;;
      *) echo "unknown case $case" >&2; exit 2 ;;
    esac
  done
done
