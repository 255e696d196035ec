#!/bin/sh
# Prometheus under compose: the prometheus.yml beside this script, with the ports of its
# scrape jobs (each `port:` line marked with its variable) set from the environment, as
# compose passes them from .env (SENDER_METRICS_PORT, HTTP_RECEIVER_PORT,
# REDIS_RECEIVER_PORT); written with alerts.yml to PROMETHEUS_CONFIG_OUT, then Prometheus
# runs on it with the arguments given. An unset variable keeps the file's port.
set -eu
here=$(dirname "$0")
out=${PROMETHEUS_CONFIG_OUT:-/tmp/framewire-prometheus}
mkdir -p "$out"
config=$(cat "$here/prometheus.yml")
ports=""
for name in SENDER_METRICS_PORT HTTP_RECEIVER_PORT REDIS_RECEIVER_PORT; do
  eval "port=\${$name:-}"
  case "$port" in
    '') continue ;;
    *[!0-9]*) echo "start.sh: $name must be a port number" >&2; exit 2 ;;
  esac
  config=$(printf '%s\n' "$config" | sed "s/port: [0-9]* # $name\$/port: $port # $name/")
  ports="$ports $name=$port"
done
printf '%s\n' "$config" >"$out/prometheus.yml"
cp "$here/alerts.yml" "$out/alerts.yml"
echo "start.sh: scrape ports:${ports:- as in prometheus.yml}; config $out/prometheus.yml"
exec prometheus --config.file="$out/prometheus.yml" "$@"
