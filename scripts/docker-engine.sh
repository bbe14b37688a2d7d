#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io when dockerd is missing, start
# dockerd in the background (no systemd here) unless one already answers, wait until it does.
set -euo pipefail
if docker info >/dev/null 2>&1; then
  echo "== docker engine: already answering ($(docker version --format '{{.Server.Version}}'))"
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "== installing docker.io (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi
echo "== starting dockerd (log: /var/log/aiarch-dockerd.log)"
nohup dockerd >/var/log/aiarch-dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "== docker engine: answering ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done
echo "error: dockerd did not answer within 60 s; last lines of its log:" >&2
tail -n 20 /var/log/aiarch-dockerd.log >&2
exit 1
