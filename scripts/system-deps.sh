#!/usr/bin/env bash
# Install the system packages the tests need, with apt-get where it can
# (Debian or Ubuntu, as root or with sudo); otherwise name them and fail.
set -euo pipefail

# command -> Debian package
declare -A NEED=(
  [redis-server]=redis-server
  [prometheus]=prometheus
  [promtool]=prometheus
)

missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)

if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); else sudo=(false); fi
  echo "installing system packages: ${packages[*]}"
  if "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
     "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null; then
    exit 0
  fi
fi
echo "framewire tests need these system packages; please install them: ${packages[*]}" >&2
exit 1
