# Shared by test/world/up and test/world/down (sourced, not run). Bash only.
# shellcheck shell=bash

world_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=$world_dir/state
world_prog=test/world/$(basename "$0")
# dockerd, sshd and friends live in sbin; a root shell from `su` or npm may not have it on PATH.
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

say() { echo "$world_prog: $*"; }
fail() {
  echo "$world_prog: FAILED: $*" >&2
  exit 1
}
# show_log FILE: the end of a log, for failure messages.
show_log() {
  [ -s "$1" ] || return 0
  {
    echo "--- last lines of $1:"
    tail -n 25 "$1" | sed 's/^/  | /'
  } >&2
}

# pid_is PID NAME [ARG]: PID is a live (not zombie) process whose command is NAME and whose
# command line contains ARG. Guards against stale pid files and recycled pids.
pid_is() {
  local pid=$1 name=$2 arg=${3:-} cmd
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
  pid_alive "$pid" || return 1
  [ -n "$arg" ] || return 0
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *"$arg"* ]]
}

# pid_alive PID: PID runs (not a zombie). For a child just started, whose name may not be its
# final one until nohup/setsid have exec'd it.
pid_alive() {
  local st
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  st=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# pids_named NAME: live processes whose command is NAME (no procps needed).
pids_named() {
  local p
  for p in /proc/[0-9]*; do
    pid_is "${p#/proc/}" "$1" && echo "${p#/proc/}"
  done
  return 0
}

# stop_pid PID NAME SECONDS: SIGTERM, wait up to SECONDS for it to exit, then SIGKILL.
stop_pid() {
  local pid=$1 name=$2 secs=$3 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < secs * 10; i++)); do
    pid_is "$pid" "$name" || return 0
    sleep 0.1
  done
  say "$name (pid $pid) ignored SIGTERM for ${secs}s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pid_is "$pid" "$name" || return 0
    sleep 0.1
  done
  fail "$name (pid $pid) survived SIGKILL"
}

# lock_world: one up/down at a time (npm test in two shells must not start two of everything).
# Children started in the background must close fd 9 (`9>&-`) or they would hold the lock.
lock_world() {
  mkdir -p "$state"
  exec 9>"$state/.lock"
  flock -w 900 9 || fail "another test/world/up or down has held $state/.lock for 15 minutes"
}
