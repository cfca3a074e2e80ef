#!/usr/bin/env bash
# Push and pull of a 200 MB incompressible layer (../shared/bench/cases/biglayer), Kiln against
# dockerd 20.10 (its BuildKit builds the image, `docker push` / `docker pull` move it), to and from
# a plain registry of the bench's own on loopback (the test world's docker-registry binary, its
# storage in a temp dir removed at the end: each run pushes 400 MB), in the same run. Prints the
# median of RUNS runs of each and the ratio Kiln/Docker (targets: push ≤ 0.5, pull ≤ 0.7).
#
#   push: Kiln — the layer is built first (untimed, --no-cache so it is new), then
#         `kiln build --push` is timed: every step is cached, so the time is the layer's export
#         (diff tar, gzip) and its upload. Docker — `docker build --no-cache` (untimed), then
#         `docker push` is timed (it tars, gzips and uploads the layer). Each run pushes to a new
#         repository, so no blob is already there (and dockerd cannot mount one across).
#   pull: the last image Kiln pushed. Kiln — `kiln build` of `FROM <image>` on a fresh engine
#         state (resolve, download, verify, gunzip, unpack into a snapshot). Docker — the image is
#         removed from dockerd (untimed), then `docker pull` is timed.
#
# Needs the test world (test/world/up) and a built Kiln (npm run build; KILN_BIN=path to run another).
# Usage: bench/push-pull.sh   (RUNS=5 by default; KILN_BENCH_CASES to use other cases;
#        KILN_BENCH_REGISTRY_PORT=5099 by default)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cases_dir=${KILN_BENCH_CASES:-$repo/../shared/bench/cases}
RUNS=${RUNS:-5}
# shellcheck disable=SC1091
. "$repo/test/world/env"
case_dir="$cases_dir/biglayer"
kiln=${KILN_BIN:-$repo/bin/kiln}
docker=/usr/bin/docker
work=$(mktemp -d)
stamp=$(date +%s)
regpid=""
trap '[ -z "$regpid" ] || kill "$regpid" 2>/dev/null; rm -rf "$work"' EXIT

# The bench's registry: loopback, plain HTTP (dockerd and Kiln both take loopback as insecure).
reg=127.0.0.1:${KILN_BENCH_REGISTRY_PORT:-5099}
if curl -s -o /dev/null "http://$reg/v2/"; then
  echo "push-pull: something already answers on $reg; set KILN_BENCH_REGISTRY_PORT" >&2
  exit 2
fi
mkdir -p "$work/registry"
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
  "$work/registry/data" "$reg" >"$work/registry/config.yml"
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
regpid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://$reg/v2/" && break; sleep 0.1; done
curl -sf -o /dev/null "http://$reg/v2/" || { cat "$work/registry/log" >&2; exit 1; }
busybox_ctx="--build-context busybox=docker-image://$KILN_TEST_BUSYBOX"

now() { date +%s.%N; }
elapsed() { python3 -c "import sys;print('%.3f'%(float(sys.argv[2])-float(sys.argv[1])))" "$1" "$2"; }
median() { python3 -c "import statistics,sys;print('%.3f'%statistics.median(map(float,sys.argv[1:])))" "$@"; }
ratio() { python3 -c "import sys;print('%.2f'%(float(sys.argv[1])/float(sys.argv[2])))" "$1" "$2"; }
timed() { # COMMAND... → seconds (the command's output is discarded; a failure stops the bench)
  local t0 t1
  # What the untimed step before wrote (a 200 MB layer) is flushed first, not during the timing.
  sync
  t0=$(now)
  "$@" >"$work/out" 2>&1 || { cat "$work/out" >&2; return 1; }
  t1=$(now)
  elapsed "$t0" "$t1"
}

push_state="$work/kiln-push-state"
kiln_push=() docker_push=() kiln_pull=() docker_pull=()
last=""
for i in $(seq "$RUNS"); do
  name="$reg/kiln-bench-push-$stamp-$i:latest"
  KILN_STATE=$push_state "$kiln" build -q --no-cache $busybox_ctx "$case_dir" >/dev/null 2>&1
  kiln_push+=("$(KILN_STATE=$push_state timed "$kiln" build -q $busybox_ctx --push -t "$name" "$case_dir")")
  last=$name
  dname="$reg/docker-bench-push-$stamp-$i:latest"
  DOCKER_BUILDKIT=1 $docker build -q --no-cache -t "$dname" "$case_dir" >/dev/null
  docker_push+=("$(timed $docker push -q "$dname")")
  $docker rmi "$dname" >/dev/null
done

mkdir -p "$work/pull"
printf 'FROM %s\n' "$last" >"$work/pull/Dockerfile"
for i in $(seq "$RUNS"); do
  rm -rf "$work/kiln-pull-state"
  kiln_pull+=("$(KILN_STATE=$work/kiln-pull-state timed "$kiln" build -q "$work/pull")")
  $docker rmi "$last" >/dev/null 2>&1 || true
  docker_pull+=("$(timed $docker pull -q "$last")")
done
$docker rmi "$last" >/dev/null 2>&1 || true

kp=$(median "${kiln_push[@]}") dp=$(median "${docker_push[@]}")
kl=$(median "${kiln_pull[@]}") dl=$(median "${docker_pull[@]}")
printf 'push 200MB layer  kiln %7ss  docker %7ss  ratio %s (target <= 0.5)  runs: kiln %s | docker %s\n' \
  "$kp" "$dp" "$(ratio "$kp" "$dp")" "${kiln_push[*]}" "${docker_push[*]}"
printf 'pull 200MB image  kiln %7ss  docker %7ss  ratio %s (target <= 0.7)  runs: kiln %s | docker %s\n' \
  "$kl" "$dl" "$(ratio "$kl" "$dl")" "${kiln_pull[*]}" "${docker_pull[*]}"
