#!/usr/bin/env bash
# A two-platform build split over a builder of two docker-container nodes (one per platform)
# against a one-platform build on one node of that same builder: the parallel case (four stages of
# `sleep 1`, joined), cold (--no-cache), pushed to the plain registry — so the two-platform time
# includes each node's push by digest and the client's index join. Prints both median times and the
# ratio two-node/one-node (target ≤ 1.2). arm64 runs under QEMU on this amd64 host.
# Needs the test world (test/world/up) and a current build (npm run build), or KILN_BIN
# naming another kiln command. Usage: bench/multi-node.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
case_dir=${KILN_BENCH_CASES:-$repo/../shared/bench/cases}/parallel
RUNS=${RUNS:-5}
# shellcheck disable=SC1091
. "$repo/test/world/env"
work=$(mktemp -d)
export DOCKER_CONFIG=$work/docker-config
builder=kilnbench$$
kiln_bin=${KILN_BIN:-$repo/bin/kiln}
cleanup() {
  $kiln_bin rm "$builder" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

$kiln_bin create --driver docker-container --driver-opt network=host --name "$builder" \
  --platform linux/amd64 >/dev/null
# The second node names the same Docker daemon by its socket: a builder's endpoints are distinct.
$kiln_bin create --append --name "$builder" --node "${builder}1" --driver-opt network=host \
  --platform linux/arm64 unix:///var/run/docker.sock >/dev/null
$kiln_bin inspect --bootstrap "$builder" >/dev/null 2>&1

ref=$KILN_TEST_REGISTRY/kiln-bench/multi-node
kiln="$kiln_bin build --builder $builder --progress=quiet --no-cache --push \
  --build-context busybox=docker-image://$KILN_TEST_BUSYBOX -f $case_dir/Dockerfile"
one="$kiln --platform linux/amd64 -t $ref:one $case_dir"
two="$kiln --platform linux/amd64,linux/arm64 -t $ref:two $case_dir"

# The two builds alternate, so that whatever else the machine does weighs on both alike.
elapsed() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  t1=$(date +%s.%N)
  python3 -c "import sys;print(float(sys.argv[2])-float(sys.argv[1]))" "$t0" "$t1"
}
# Warm-up builds fetch the base image into each node, outside the timings.
$two >/dev/null 2>&1
$one >/dev/null 2>&1
for _ in $(seq "$RUNS"); do
  elapsed $one >>"$work/one.txt"
  elapsed $two >>"$work/two.txt"
done
median() { python3 -c "import statistics,sys;print('%.3f'%statistics.median(float(l) for l in open(sys.argv[1])))" "$1"; }
t1=$(median "$work/one.txt")
t2=$(median "$work/two.txt")
ratio=$(python3 -c "import sys;print('%.2f'%(float(sys.argv[1])/float(sys.argv[2])))" "$t2" "$t1")
printf 'parallel cold+push  one platform on one node %ss  two platforms on two nodes %ss  ratio %s (target <= 1.2)\n' \
  "$t1" "$t2" "$ratio"
