#!/usr/bin/env bash
# Install (when missing) and start what torchstack's builds and tests need on a Debian host:
# Docker Engine, debootstrap (local base images), skopeo and a local registry on 127.0.0.1:5000.
# Idempotent: running services are left alone.
set -euo pipefail

REGISTRY_ADDR="${TORCHSTACK_TEST_REGISTRY:-127.0.0.1:5000}"
STATE_DIR="${TORCHSTACK_SERVICES_DIR:-/var/lib/torchstack-services}"

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "error: $1 needs root (or install it yourself: $2)" >&2
        exit 1
    fi
}

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v skopeo >/dev/null || missing+=(skopeo)
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    need_root "installing ${missing[*]}" "apt-get install ${missing[*]}"
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$STATE_DIR"
if ! docker info >/dev/null 2>&1; then
    need_root "starting dockerd" "start your Docker Engine"
    # A dockerd that was killed leaves its pid file behind; a live one would answer above.
    for pidfile in /var/run/docker.pid /run/docker/containerd/containerd.pid; do
        if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            rm -f "$pidfile"
        fi
    done
    echo "starting dockerd (log: $STATE_DIR/dockerd.log)"
    setsid nohup dockerd >"$STATE_DIR/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { echo "error: dockerd did not start; see $STATE_DIR/dockerd.log" >&2; exit 1; }
fi

if ! curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; then
    echo "starting docker-registry on $REGISTRY_ADDR (log: $STATE_DIR/registry.log)"
    mkdir -p "$STATE_DIR/registry"
    cat >"$STATE_DIR/registry.yml" <<CONF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE_DIR/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
CONF
    setsid nohup /usr/bin/docker-registry serve "$STATE_DIR/registry.yml" \
        >"$STATE_DIR/registry.log" 2>&1 </dev/null &
    for _ in $(seq 1 30); do
        curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1 && break
        sleep 1
    done
    curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null || { echo "error: registry did not start; see $STATE_DIR/registry.log" >&2; exit 1; }
fi
echo "services ready: docker $(docker version --format '{{.Server.Version}}'), registry http://$REGISTRY_ADDR"
