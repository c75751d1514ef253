#!/usr/bin/env bash
# Memory of the agent as a pod sees it: the agent in a memory cgroup with a limit, discovering N
# nodes through the fake API server (loopback addresses 127.1.x.y, kernel echo replies), datagram
# ICMP, 8 scrapes. Prints the cgroup's peak and whether the kernel had to reclaim or kill.
#   sudo bash bench/pod-memory.sh NODES LIMIT_MIB ["NODE_OPTIONS"]
# SHIPPED=1 runs the agent with the environment of deploy/base/daemonset.yaml (heap flags,
# MALLOC_ARENA_MAX, MENTAT_MAX_TARGETS, datagram ICMP, POD_NAMESPACE: as the only agent it takes the
# node-list lease, so it is the publisher, the one agent that watches Nodes); a NODE_OPTIONS
# argument replaces the shipped one. MESH=full sets MENTAT_MESH=full (default: the agent's default,
# auto, sampled above 100 nodes); MAX_TARGETS=N sets MENTAT_MAX_TARGETS. FOLLOWER=1 (with SHIPPED=1)
# first starts another agent outside the cgroup, which takes the lease, so the measured one follows the
# published list, as every agent but one does in a cluster.
# NODE_KIND=realistic serves Node objects the size kubelets report (~10 KB each) instead of minimal
# ones; KUBELET=1 rewrites every node's status once per 5 min, as kubelets do. The API server gzips
# list responses over 128 KiB, as kube-apiserver does. PAY_BINARY=1 runs the agent on a fresh copy of
# the node binary whose pages are dropped from the page cache, so the pages the agent touches are
# charged to its cgroup, as in a pod on a node where nothing else has read that binary; COLD=1 does
# the same by dropping the whole machine's page cache (not on a shared machine).
# Needs root, cgroup v1 or v2 memory controller, and `npm run build` first.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:?nodes}; LIMIT=${2:?limit MiB}; OPTS=${3:-}; KIND=${NODE_KIND:-minimal}
SHIPPED=${SHIPPED:-0}; MESH=${MESH:-}; MAX_TARGETS=${MAX_TARGETS:-}; KUBELET=${KUBELET:-0}; FOLLOWER=${FOLLOWER:-0}
if [ "$FOLLOWER" = 1 ] && [ "$SHIPPED" != 1 ]; then echo "pod-memory: FOLLOWER=1 needs SHIPPED=1 (the published list needs POD_NAMESPACE)" >&2; exit 2; fi
NODE=node_modules/.bin/node
RANGE=$(cat /proc/sys/net/ipv4/ping_group_range)
OUT=$(mktemp -d)
CG=""
cleanup() {
  [ -n "$CG" ] && kill $(cat "$CG/cgroup.procs" 2>/dev/null) 2>/dev/null || true
  kill "${API:-}" "${PUBLISHER:-}" 2>/dev/null || true
  # A cgroup can only be removed once empty; an agent at its memory limit takes a while to exit.
  for _ in $(seq 50); do [ -z "$CG" ] || [ -z "$(cat "$CG/cgroup.procs" 2>/dev/null)" ] && break; sleep 0.2; done
  echo "$RANGE" > /proc/sys/net/ipv4/ping_group_range; { [ -n "$CG" ] && rmdir "$CG" 2>/dev/null; } || true; rm -rf "$OUT"
}
trap cleanup EXIT
# The agent's settings: the DaemonSet's, or only what this script sets.
AGENT_ENV=()
SELF=self
if [ "$SHIPPED" = 1 ]; then
  SELF=node-0
  mapfile -t AGENT_ENV < <("$NODE" dist/bench/daemonset.js "$SELF" mentat)
  [ "${#AGENT_ENV[@]}" -gt 0 ] || { echo "pod-memory: no environment from dist/bench/daemonset.js (npm run build?)" >&2; exit 1; }
fi
# The API server runs a copy of the node binary: the pages it touches must not be charged to the root
# cgroup on the agent's behalf. Copied before the page cache is dropped, for the same reason.
cp "$(readlink -f "$NODE")" "$OUT/node-api"
AGENT_NODE=$NODE
if [ "${PAY_BINARY:-0}" = 1 ]; then
  AGENT_NODE=$OUT/node-agent
  cp "$(readlink -f "$NODE")" "$AGENT_NODE"; sync "$AGENT_NODE"; dd if="$AGENT_NODE" iflag=nocache count=0 status=none
fi
if [ "${COLD:-0}" = 1 ]; then sync; echo 1 > /proc/sys/vm/drop_caches; fi
if [ -d /sys/fs/cgroup/memory ]; then
  CG=/sys/fs/cgroup/memory/mentat-pod-$$; mkdir "$CG"; echo $((LIMIT << 20)) > "$CG/memory.limit_in_bytes"
  peak() { echo $(( $(cat "$CG/memory.max_usage_in_bytes") >> 20 )); }; fails() { cat "$CG/memory.failcnt"; }
else
  CG=/sys/fs/cgroup/mentat-pod-$$; mkdir "$CG"; echo $((LIMIT << 20)) > "$CG/memory.max"
  peak() { echo $(( $(cat "$CG/memory.peak") >> 20 )); }; fails() { grep -E '^(max|oom_kill) ' "$CG/memory.events" | tr '\n' ' '; }
fi
# Datagram ICMP as the default DaemonSet uses it (the pod sysctl), here in the root namespace for the run.
echo "0 2147483647" > /proc/sys/net/ipv4/ping_group_range
"$OUT/node-api" --input-type=module -e "
  const { FakeApiServer, makeNode, makeRealisticNode } = await import('./dist/test/support/fake-apiserver.js');
  const { startNodeHeartbeats } = await import('./dist/test/support/fake-api-heartbeats.js');
  const s = await FakeApiServer.start({ compressResponses: true });
  const make = '$KIND' === 'realistic' ? makeRealisticNode : (name, ip) => makeNode(name, ip);
  s.upsertNodes(Array.from({ length: $N }, (_, i) => make('node-' + i, '127.1.' + (i >> 8) + '.' + (i & 255), i)));
  if ('$KUBELET' === '1') startNodeHeartbeats(s, { periodMs: 300000 });
  console.log(await s.writeKubeconfig('$OUT'));" > "$OUT/kc" &
API=$!
for _ in $(seq 50); do [ -s "$OUT/kc" ] && break; sleep 0.2; done
PORT=$((20000 + RANDOM % 20000))
if [ "$FOLLOWER" = 1 ]; then
  # The publisher: the same settings on another node, outside the measured cgroup.
  mapfile -t PUB_ENV < <("$NODE" dist/bench/daemonset.js node-1 mentat)
  PUB_ENV+=("KUBECONFIG=$(head -1 "$OUT/kc")" "MENTAT_METRICS_PORT=$((PORT + 1))" "MENTAT_METRICS_HOST=127.0.0.1" "MENTAT_LOG_LEVEL=info")
  if [ -n "$MESH" ]; then PUB_ENV+=("MENTAT_MESH=$MESH"); fi
  env "${PUB_ENV[@]}" "$NODE" dist/src/main.js > "$OUT/publisher.log" 2>&1 &
  PUBLISHER=$!
  for _ in $(seq 600); do grep -q 'took the node-list lease' "$OUT/publisher.log" && [ "$(curl -s -o /dev/null -w '%{http_code}' "localhost:$((PORT + 1))/readyz")" = 200 ] && break; sleep 0.2; done
  # Its first publication (2 s quiet, at most 10 s after the list).
  sleep 12
fi
AGENT_ENV+=("KUBECONFIG=$(head -1 "$OUT/kc")" "NODE_NAME=$SELF" "MENTAT_METRICS_PORT=$PORT" "MENTAT_METRICS_HOST=127.0.0.1" "MENTAT_LOG_LEVEL=info")
if [ "$SHIPPED" != 1 ] || [ -n "$OPTS" ]; then AGENT_ENV+=("NODE_OPTIONS=$OPTS"); fi
if [ -n "$MESH" ]; then AGENT_ENV+=("MENTAT_MESH=$MESH"); fi
if [ -n "$MAX_TARGETS" ]; then AGENT_ENV+=("MENTAT_MAX_TARGETS=$MAX_TARGETS"); fi
env "${AGENT_ENV[@]}" sh -c "echo \$\$ > $CG/cgroup.procs; exec $AGENT_NODE dist/src/main.js" > "$OUT/log" 2>&1 &
# Ready (the node list synced; a publisher first waits its turn for the lease), then 10 s more.
for _ in $(seq 50); do [ -n "$(cat "$CG/cgroup.procs")" ] && break; sleep 0.1; done
ready=no
for _ in $(seq 600); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "localhost:$PORT/readyz" 2>/dev/null)" = 200 ]; then ready=yes; break; fi
  [ -n "$(cat "$CG/cgroup.procs")" ] || break
  sleep 0.2
done
sleep 10
ms=()
for _ in 1 2 3 4 5 6 7 8; do ms+=("$(curl -sf -o /dev/null -w '%{time_total}' "localhost:$PORT/metrics" 2>/dev/null || echo fail)"); sleep 1.5; done
series=$(curl -s "localhost:$PORT/metrics" | grep -c '^node_latency_count' || true)
alive=$([ -n "$(cat "$CG/cgroup.procs")" ] && echo yes || echo "no (killed)")
if grep -q 'took the node-list lease' "$OUT/log"; then role=publisher; elif grep -q 'watching Nodes directly' "$OUT/log"; then role=fallback; elif [ "$SHIPPED" = 1 ]; then role=follower; else role=direct; fi
# Resident set as the kernel counts it for the process: peak (VmHWM), now, and its anonymous part
# (the heap; the rest is the node binary and libraries mapped from disk).
rss="-"
pid=$(head -1 "$CG/cgroup.procs" 2>/dev/null || true)
if [ -n "$pid" ]; then
  kib() { awk -v k="$1:" '$1 == k { print int($2 / 1024) }' "/proc/$pid/status"; }
  rss="peak=$(kib VmHWM)MiB now=$(kib VmRSS)MiB anon=$(kib RssAnon)MiB"
fi
settings=$([ "$SHIPPED" = 1 ] && echo shipped || echo defaults)
echo "nodes=$N ($KIND) binary_charged=$([ "${PAY_BINARY:-0}" = 1 ] || [ "${COLD:-0}" = 1 ] && echo yes || echo "if not cached") kubelet_updates=$([ "$KUBELET" = 1 ] && echo 5min || echo none) settings=$settings mesh=${MESH:-auto} max_targets=${MAX_TARGETS:-$([ "$SHIPPED" = 1 ] && echo shipped || echo default)} node_list=$role ready=$ready limit=${LIMIT}MiB NODE_OPTIONS='${OPTS:-$([ "$SHIPPED" = 1 ] && echo shipped)}' cgroup_peak=$(peak)MiB limit-hits=$(fails) alive=$alive rss:$rss destinations=$series scrape_s=${ms[*]}"
