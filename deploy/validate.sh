#!/usr/bin/env bash
# Validates the deployment files without a Docker engine:
#
#   1. compose.yaml: docker-compose (Debian's package) parses and resolves it,
#      with and without the "scale" profile, and every nginx upstream is a
#      service of that profile.
#   2. Dockerfile: its Go version matches go.mod, and its build command
#      yields a static binary.
#   3. deploy/nginx.conf: `nginx -t` accepts it once the compose host names
#      point at loopback ports, and the same config then carries a real rush
#      to three ticketrush nodes on one database: nothing oversold, every
#      check passes.
#
# Installs what it needs from Debian's packages (run as root, as CI does).
# Usage: deploy/validate.sh   (from anywhere; ports 18081-18083 and 18088
# must be free, or set VALIDATE_PORT_BASE).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
base=${VALIDATE_PORT_BASE:-18080}
work=$(mktemp -d)
# nginx's workers run as an unprivileged user and buffer into this folder.
chmod 755 "$work"
pids=()

cleanup() {
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

need=()
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v nginx >/dev/null || need+=(nginx-light)
command -v file >/dev/null || need+=(file)
command -v curl >/dev/null || need+=(curl)
/usr/bin/python3 -c 'import yaml' 2>/dev/null || need+=(python3-yaml)
if ((${#need[@]})); then
	step "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# policy-rc.d keeps the nginx package from starting a server of its
	# own on port 80.
	if [[ -e /usr/sbin/policy-rc.d ]]; then
		apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	else
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
		rm -f /usr/sbin/policy-rc.d
	fi
fi

step "compose.yaml"
docker-compose -f compose.yaml config -q
# docker-compose 1.x lists every service whatever the profile, so the
# profiles are read from the resolved file.
docker-compose -f compose.yaml config >"$work/compose.resolved.yaml"
read -r services scale < <(/usr/bin/python3 - "$work/compose.resolved.yaml" <<'PY'
import sys, yaml
svcs = yaml.safe_load(open(sys.argv[1]))["services"]
default = sorted(n for n, s in svcs.items() if not s.get("profiles"))
scale = sorted(n for n, s in svcs.items() if "scale" in s.get("profiles", []))
print(",".join(default), ",".join(scale))
PY
)
echo "default services:       $services"
echo "scale profile services: $scale"
for s in app postgres redis; do
	[[ ",$services," == *",$s,"* ]] || fail "compose.yaml has no service $s outside profiles"
done
for s in node1 node2 node3 nginx; do
	[[ ",$scale," == *",$s,"* ]] || fail "the scale profile has no service $s"
done
grep -A1 -- '- --appendfsync' "$work/compose.resolved.yaml" | grep -q -- '- always' ||
	fail "redis does not fsync its append-only file before answering (--appendfsync always)"
upstreams=$(sed -nE 's/^[[:space:]]*server[[:space:]]+([a-z0-9_-]+):8080.*/\1/p' deploy/nginx.conf)
[[ $(wc -w <<<"$upstreams") -eq 3 ]] || fail "deploy/nginx.conf should name 3 upstream nodes, names: $upstreams"
for u in $upstreams; do
	[[ ",$scale," == *",$u,"* ]] || fail "nginx upstream $u is not a service of the scale profile"
done
echo "ok: compose.yaml resolves; nginx upstreams ($(echo $upstreams)) are scale services"

step "Dockerfile"
gomod=$(sed -nE 's/^go ([0-9]+\.[0-9]+).*/\1/p' go.mod)
image=$(sed -nE 's/^FROM golang:([0-9]+\.[0-9]+).*/\1/p' Dockerfile)
[[ "$gomod" == "$image" ]] || fail "Dockerfile builds with Go $image, go.mod wants $gomod"
grep -q '^USER [1-9]' Dockerfile || fail "Dockerfile does not switch to a non-root user"
build=$(sed -nE 's/^RUN (CGO_ENABLED=0 go build .*) -o [^ ]+ (\.\/cmd\/ticketrush)$/\1 -o '"${work//\//\\/}"'\/ticketrush \2/p' Dockerfile)
[[ -n "$build" ]] || fail "no CGO_ENABLED=0 go build line in Dockerfile"
echo "$build"
eval "$build"
file "$work/ticketrush" | grep -q 'statically linked' || fail "the binary is not static: $(file "$work/ticketrush")"
echo "ok: Go $image as go.mod; static binary; non-root user"

step "deploy/nginx.conf"
# Compose's host names resolve only on its network: point each node at a
# loopback port, and listen on one, then test the rest of the file as is.
port() { echo $((base + $1)); }
sed -E \
	-e "s/server node1:8080/server 127.0.0.1:$(port 1)/" \
	-e "s/server node2:8080/server 127.0.0.1:$(port 2)/" \
	-e "s/server node3:8080/server 127.0.0.1:$(port 3)/" \
	-e "s/listen 8080;/listen 127.0.0.1:$(port 8);/" \
	deploy/nginx.conf >"$work/nginx.conf"
grep -E 'server 127|listen' "$work/nginx.conf"
nginx -t -p "$work" -c "$work/nginx.conf"

step "a rush through nginx to three nodes on one database"
# SQLite: several processes share one database file, so the three nodes
# need no database server here; compose runs them on PostgreSQL or Redis.
# The rush below is a thousand visitors from one address, which the default
# rate limit would refuse as the script it is: it is turned off explicitly.
for i in 1 2 3; do
	"$work/ticketrush" serve --addr "127.0.0.1:$(port $i)" --db "sqlite:$work/shared.db" \
		--admin-token validate --log-level warn --rate-limit 0 2>>"$work/nodes.log" &
	pids+=($!)
	sleep 0.3 # the first node migrates and seeds; the others find it done
done
nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' 2>>"$work/nginx.log" &
pids+=($!)
for i in 1 2 3 8; do
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "http://127.0.0.1:$(port $i)/healthz" 2>/dev/null && break
		sleep 0.1
	done
	curl -fsS -o /dev/null "http://127.0.0.1:$(port $i)/healthz" ||
		{ cat "$work/nodes.log" "$work/nginx.log" >&2; fail "127.0.0.1:$(port $i) does not answer"; }
done
curl -fsS "http://127.0.0.1:$(port 8)/nginx-health"
if ! "$work/ticketrush" rush --url "http://127.0.0.1:$(port 8)" --create 300 --visitors 1000 \
	--concurrency 32 --admin-token validate >"$work/rush.txt" 2>"$work/rush.err"; then
	cat "$work/rush.txt" "$work/rush.err" "$work/nodes.log" "$work/nginx.log" >&2
	fail "rush through nginx"
fi
cat "$work/rush.txt"
# Every node took part: each answered reserves.
for i in 1 2 3; do
	n=$(curl -fsS "http://127.0.0.1:$(port $i)/metrics" | awk '/^ticketrush_http_requests_total\{.*route="\/api\/reserve"/ {s+=$2} END {print s+0}')
	echo "node $i answered $n reserves"
	[[ "$n" -gt 0 ]] || fail "nginx sent no reserve to node $i"
done

printf '\nall deployment checks passed\n'
