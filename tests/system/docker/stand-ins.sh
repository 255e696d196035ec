#!/usr/bin/env bash
# Stand-in base images for the compose smoke test, made locally because no
# container registry can be reached: a Debian bookworm rootfs from
# `debootstrap --variant=minbase`, with this machine's CA bundle copied in (so
# pip inside a build trusts what the machine trusts), imported with
# `docker import`.
#
#   tests/system/docker/stand-ins.sh [--no-debootstrap] CACHE_DIR
#
# Talks to the engine in DOCKER_HOST. Prints one NAME=IMAGE line per image:
#   python      python3 + python3-venv   (the Dockerfile's ARG PYTHON_IMAGE)
#   redis       redis-server + redis-tools
#   prometheus  prometheus + wget        (entrypoint, user and workdir as upstream)
# Each rootfs is kept in CACHE_DIR as a tar named after a hash of the recipe
# (SPECS below), so reruns only `docker import` (or nothing, if the engine
# has the image); changing the recipe makes new ones. The Debian mirror is taken
# from this machine's apt sources at run time. With --no-debootstrap, an image
# that would need debootstrap is not made: the script exits with status 3.
set -euo pipefail

die() { echo "stand-ins.sh: $*" >&2; exit 1; }
log() { echo "stand-ins.sh: $*" >&2; }
allow_debootstrap=1
if [ "${1:-}" = --no-debootstrap ]; then allow_debootstrap=0; shift; fi
[ $# -eq 1 ] || die "usage: $0 [--no-debootstrap] CACHE_DIR"
mkdir -p "$1"
cache=$(realpath "$1")
suite=bookworm
ca_bundle=/etc/ssl/certs/ca-certificates.crt
path_env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# What each image is made of: name, packages, then `docker import --change`s.
# The image tags and cached tars are named after a hash of these lines and
# RECIPE: bump RECIPE when you change how make_rootfs makes a rootfs.
RECIPE=1
SPECS=(
  "python|python3,python3-venv|ENV $path_env|ENV LANG=C.UTF-8|CMD [\"python3\"]"
  "redis|redis-server,redis-tools|ENV $path_env|WORKDIR /data|CMD [\"redis-server\"]"
  "prometheus|prometheus,wget|ENV $path_env|USER nobody|WORKDIR /prometheus|ENTRYPOINT [\"/usr/bin/prometheus\"]|CMD [\"--config.file=/etc/prometheus/prometheus.yml\", \"--storage.tsdb.path=/prometheus\"]"
)
recipe=$(printf '%s\n' "$RECIPE" "$suite" "${SPECS[@]}" | sha256sum | cut -c1-12)

# The Debian mirror in this machine's apt sources (deb822 *.sources files, then
# one-line ones): a "deb" source with component main, not a security archive;
# one that serves $suite first, then one whose path ends in /debian.
apt_mirror() {
  local files=() f
  for f in /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && files+=("$f"); done
  {
    if [ ${#files[@]} -gt 0 ]; then
      awk 'BEGIN { RS = ""; FS = "\n" }
        {
          types = uris = suites = comps = ""; enabled = "yes"
          for (i = 1; i <= NF; i++) {
            if ($i ~ /^[ \t]*#/ || $i !~ /:/) continue
            key = tolower($i); sub(/:.*/, "", key)
            val = $i; sub(/^[^:]*:[ \t]*/, "", val)
            if (key == "types") types = val
            else if (key == "uris") uris = val
            else if (key == "suites") suites = val
            else if (key == "components") comps = val
            else if (key == "enabled") enabled = tolower(val)
          }
          if (enabled == "no" || (" " types " ") !~ / deb / || (" " comps " ") !~ / main /) next
          split(uris, u, /[ \t]+/)
          print u[1], ((" " suites " ") ~ / '"$suite"' /) ? "yes" : "no"
        }' "${files[@]}"
    fi
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      sed -E 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" && (" " $0 " ") ~ / main / {
        print $2, ($3 == "'"$suite"'") ? "yes" : "no" }'
    done
  } | awk '$1 ~ /^[a-z]+:\/\// && $1 !~ /security/ {
      score = ($2 == "yes" ? 0 : 2) + ($1 ~ /\/debian\/?$/ ? 0 : 1); print score, NR, $1 }' |
    sort -k1,1n -k2,2n | head -n1 | cut -d' ' -f3
}

# make_rootfs NAME PACKAGES -> prints the path of the cached tar.
make_rootfs() {
  local name=$1 packages=$2
  local tar="$cache/$name-$recipe.tar"
  if [ -s "$tar" ]; then echo "$tar"; return; fi
  if [ "$allow_debootstrap" -eq 0 ]; then
    log "the $name stand-in needs debootstrap, which --no-debootstrap forbids"
    exit 3
  fi
  command -v debootstrap >/dev/null || die "debootstrap is not installed: run scripts/install-docker.sh"
  [ -s "$ca_bundle" ] || die "no CA bundle at $ca_bundle"
  local mirror
  mirror=$(apt_mirror)
  [ -n "$mirror" ] || die "found no Debian mirror in /etc/apt/sources.list{,.d}"
  local rootfs="$cache/rootfs-$name"
  rm -rf "$rootfs"
  mkdir -p "$cache/debs"
  log "debootstrap $suite ($name: $packages)"
  local started=$SECONDS
  if ! debootstrap --variant=minbase --include="$packages" --cache-dir="$cache/debs" \
    "$suite" "$rootfs" "$mirror" >"$cache/debootstrap-$name.log" 2>&1; then
    tail -n 30 "$cache/debootstrap-$name.log" >&2
    die "debootstrap of $name failed (log: $cache/debootstrap-$name.log)"
  fi
  mkdir -p "$rootfs/etc/ssl/certs"
  cp "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  case "$name" in
    python) printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf" ;;
    redis) mkdir -p "$rootfs/data" ;;
    prometheus) mkdir -p "$rootfs/prometheus" && chown 65534:65534 "$rootfs/prometheus" ;;
  esac
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/root/.cache
  rm -f "$cache/$name"-*.tar
  tar --numeric-owner -C "$rootfs" -cf "$tar.part" .
  mv "$tar.part" "$tar"
  rm -rf "$rootfs"
  log "$name rootfs: $((SECONDS - started)) s, $(du -h "$tar" | cut -f1)"
  echo "$tar"
}

# stand_in NAME PACKAGES CHANGE... -> prints NAME=IMAGE
stand_in() {
  local name=$1 packages=$2
  shift 2
  local image="framewire-ci/$name:$suite-$recipe"
  if ! docker image inspect "$image" >/dev/null 2>&1; then
    local tar changes=() c old
    tar=$(make_rootfs "$name" "$packages")
    for c in "$@"; do changes+=(--change "$c"); done
    docker import "${changes[@]}" --message "framewire CI stand-in: $packages" "$tar" "$image" >/dev/null
    log "imported $image"
    # Stand-ins of earlier recipes are of no more use.
    for old in $(docker image ls "framewire-ci/$name" --format '{{.Repository}}:{{.Tag}}'); do
      [ "$old" = "$image" ] || docker image rm "$old" >/dev/null 2>&1 || true
    done
  fi
  echo "$name=$image"
}

for spec in "${SPECS[@]}"; do
  IFS='|' read -r -a fields <<<"$spec"
  stand_in "${fields[@]}"
done
