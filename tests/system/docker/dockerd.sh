#!/usr/bin/env bash
# A private Docker engine for the compose smoke test, with host networking only.
#
#   tests/system/docker/dockerd.sh start STATE_DIR DATA_ROOT   prints DOCKER_HOST once it answers
#   tests/system/docker/dockerd.sh stop STATE_DIR              stops it by PID, removes STATE_DIR
#
# STATE_DIR (keep it short: it holds unix sockets) gets the daemon's own config
# file (an empty {}), exec root, pid file, socket and log. DATA_ROOT holds
# images and build cache; it may be kept between runs. The daemon creates no
# bridge, touches no iptables rules and no sysctl, and masquerades nothing:
# every container must use network_mode: host (tests/system/docker/compose.ci.yaml).
set -euo pipefail

die() { echo "dockerd.sh: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: $0 start STATE_DIR DATA_ROOT | stop STATE_DIR"
action=$1
state=$2

start() {
  local data_root=$1
  mkdir -p "$state/exec" "$data_root"
  [ -e "$state/dockerd.pid" ] && die "$state/dockerd.pid exists: a daemon may already run there"
  echo '{}' >"$state/daemon.json"
  realpath "$data_root" >"$state/data-root"
  local sock="$state/docker.sock"
  # setsid: the daemon has its own session, so a Ctrl-C on the test does not
  # reach it before the test stops it.
  setsid dockerd \
    --config-file "$state/daemon.json" \
    --data-root "$data_root" \
    --exec-root "$state/exec" \
    --pidfile "$state/dockerd.pid" \
    -H "unix://$sock" \
    --bridge=none \
    --iptables=false \
    --ip6tables=false \
    --ip-forward=false \
    --ip-masq=false \
    --userland-proxy=false \
    --log-level=warn \
    </dev/null >"$state/dockerd.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$state/launcher.pid"
  local deadline=$((SECONDS + 60))
  until DOCKER_HOST="unix://$sock" docker version >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$state/dockerd.log" >&2
      die "dockerd exited during start-up (log above)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      cat "$state/dockerd.log" >&2
      stop
      die "dockerd did not answer on $sock within 60 s (log above)"
    fi
    sleep 0.2
  done
  echo "unix://$sock"
}

unmount_under() {
  # Mounts a killed daemon may leave behind (container rootfs, shm, netns).
  local dir
  dir=$(realpath -m "$1")
  awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
}

stop() {
  local pid=""
  if [ -s "$state/dockerd.pid" ]; then
    pid=$(cat "$state/dockerd.pid")
  elif [ -s "$state/launcher.pid" ]; then
    pid=$(cat "$state/launcher.pid")
  fi
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "dockerd.sh: dockerd $pid ignored SIGTERM for 30 s: SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  # The containerd dockerd started for itself runs from this exec root; it
  # stops with dockerd. Stop it by its pid file if it did not.
  local cpid_file="$state/exec/containerd/containerd.pid"
  if [ -s "$cpid_file" ]; then
    local cpid
    cpid=$(cat "$cpid_file")
    if kill -0 "$cpid" 2>/dev/null; then
      kill -TERM "$cpid" 2>/dev/null || true
      local deadline=$((SECONDS + 10))
      while kill -0 "$cpid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
      kill -KILL "$cpid" 2>/dev/null || true
    fi
  fi
  unmount_under "$state"
  if [ -s "$state/data-root" ]; then unmount_under "$(cat "$state/data-root")"; fi
  rm -rf "$state"
}

case "$action" in
  start) [ $# -eq 3 ] || die "usage: $0 start STATE_DIR DATA_ROOT"; start "$3" ;;
  stop) stop ;;
  *) die "unknown action: $action" ;;
esac
