#!/usr/bin/env bash
# Memory of mentat as a pod sees it: the process in a memory cgroup with a limit, discovering N nodes
# through the in-repo API server (deploy/'s RBAC per service account when kubectl is there to render
# it), datagram ICMP, 8 scrapes. Prints the cgroup's peak and whether the kernel had to reclaim or kill.
# Everything runs in a network namespace of its own whose 10.200.0.0/16 is a local route, so the node
# addresses 10.200.x.y are remote unicast to the agent (it refuses loopback ones) and its kernel answers.
#   sudo bash bench/pod-memory.sh NODES LIMIT_MIB ["NODE_OPTIONS"]
# SHIPPED=1 runs the agent with the environment of deploy/base/daemonset.yaml (heap flags,
# MALLOC_ARENA_MAX, MENTAT_MAX_TARGETS, datagram ICMP, POD_NAMESPACE); alone, it sees no controller
# and falls back to watching Nodes itself (node_list=fallback). FOLLOWER=1 (with SHIPPED=1) first
# starts the mentat-controller outside the cgroup and waits until it has published the list, so the
# measured agent follows it (node_list=published), as every agent does in a cluster. WHO=controller
# measures the mentat-controller instead, with deploy/base/controller.yaml's environment (its limit
# there: 256Mi). A NODE_OPTIONS argument replaces the shipped one. MESH=full sets MENTAT_MESH=full
# (default: the agent's default, auto, sampled above 100 nodes); MAX_TARGETS=N sets MENTAT_MAX_TARGETS.
# NODE_KIND=realistic serves Node objects the size kubelets report (~10 KB each) instead of minimal
# ones; KUBELET=1 rewrites every node's status once per 5 min, as kubelets do. The API server gzips
# list responses over 128 KiB, as kube-apiserver does. PAY_BINARY=1 runs the measured process on a
# fresh copy of the node binary whose pages are dropped from the page cache, so the pages it touches
# are charged to its cgroup, as in a pod on a node where nothing else has read that binary; COLD=1
# does the same by dropping the whole machine's page cache (not on a shared machine).
# Needs root, cgroup v1 or v2 memory controller, and `npm run build` first.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:?nodes}; LIMIT=${2:?limit MiB}; OPTS=${3:-}; KIND=${NODE_KIND:-minimal}
SHIPPED=${SHIPPED:-0}; MESH=${MESH:-}; MAX_TARGETS=${MAX_TARGETS:-}; KUBELET=${KUBELET:-0}; FOLLOWER=${FOLLOWER:-0}; WHO=${WHO:-agent}
if [ "$FOLLOWER" = 1 ] && [ "$SHIPPED" != 1 ]; then echo "pod-memory: FOLLOWER=1 needs SHIPPED=1 (the published list needs POD_NAMESPACE)" >&2; exit 2; fi
if [ "$WHO" != agent ] && [ "$WHO" != controller ]; then echo "pod-memory: WHO must be agent or controller, not '$WHO'" >&2; exit 2; fi
if [ "$WHO" = controller ] && [ "$FOLLOWER" = 1 ]; then echo "pod-memory: WHO=controller measures the controller; FOLLOWER=1 is for an agent" >&2; exit 2; fi
[ "$WHO" = controller ] && SHIPPED=1
NODE=node_modules/.bin/node
[ -f dist/bench/pod-memory-api.js ] || { echo "pod-memory: no dist/bench/pod-memory-api.js: run npm run build first" >&2; exit 1; }
if [ -z "${POD_MEMORY_NETNS:-}" ]; then
  # Named as the tests name theirs (mt?-<creator's PID in base 36>-...), so .ci/run sweeps a leftover.
  NETNS=mtm-$("$NODE" -p "($$).toString(36)")-mem
  ip netns add "$NETNS"
  trap 'ip netns pids "$NETNS" 2>/dev/null | xargs -r kill 2>/dev/null; ip netns delete "$NETNS" 2>/dev/null || true' EXIT
  ip -n "$NETNS" link set lo up
  ip -n "$NETNS" route add local 10.200.0.0/16 dev lo
  # Datagram ICMP as the DaemonSet's pod sysctl allows it; the sysctl is the namespace's own.
  ip netns exec "$NETNS" sysctl -qw net.ipv4.ping_group_range="0 2147483647"
  rc=0; nsenter --net="/run/netns/$NETNS" env POD_MEMORY_NETNS="$NETNS" bash "$0" "$@" || rc=$?
  exit "$rc"
fi
OUT=$(mktemp -d)
CG=""
cleanup() {
  [ -n "$CG" ] && kill $(cat "$CG/cgroup.procs" 2>/dev/null) 2>/dev/null || true
  kill "${API:-}" "${CONTROLLER:-}" 2>/dev/null || true
  # A cgroup can only be removed once empty; a process at its memory limit takes a while to exit.
  for _ in $(seq 50); do [ -z "$CG" ] || [ -z "$(cat "$CG/cgroup.procs" 2>/dev/null)" ] && break; sleep 0.2; done
  { [ -n "$CG" ] && rmdir "$CG" 2>/dev/null; } || true; rm -rf "$OUT"
}
trap cleanup EXIT
# One /metrics value: the sum of a metric's series whose labels contain $2 (e.g. 'mode="published"').
metric() { curl -s "localhost:$PORT/metrics" | awk -v m="$1" -v l="${2:-}" '($1 == m || index($1, m "{") == 1) && index($1, l) { s += $2 } END { print s + 0 }'; }
# The measured process's settings: the DaemonSet's or the controller's, or only what this script sets.
AGENT_ENV=()
SELF=self
if [ "$SHIPPED" = 1 ]; then
  SELF=node-0
  mapfile -t AGENT_ENV < <("$NODE" dist/bench/daemonset.js $([ "$WHO" = controller ] && echo --controller) "$SELF" mentat)
  [ "${#AGENT_ENV[@]}" -gt 0 ] || { echo "pod-memory: no environment from dist/bench/daemonset.js (npm run build?)" >&2; exit 1; }
fi
# The API server runs a copy of the node binary: the pages it touches must not be charged to the root
# cgroup on the measured process's behalf. Copied before the page cache is dropped, for the same reason.
cp "$(readlink -f "$NODE")" "$OUT/node-api"
MEASURED_NODE=$NODE
if [ "${PAY_BINARY:-0}" = 1 ]; then
  MEASURED_NODE=$OUT/node-measured
  cp "$(readlink -f "$NODE")" "$MEASURED_NODE"; sync "$MEASURED_NODE"; dd if="$MEASURED_NODE" iflag=nocache count=0 status=none
fi
if [ "${COLD:-0}" = 1 ]; then sync; echo 1 > /proc/sys/vm/drop_caches; fi
if [ -d /sys/fs/cgroup/memory ]; then
  CG=/sys/fs/cgroup/memory/mentat-pod-$$; mkdir "$CG"; echo $((LIMIT << 20)) > "$CG/memory.limit_in_bytes"
  peak() { echo $(( $(cat "$CG/memory.max_usage_in_bytes") >> 20 )); }; fails() { cat "$CG/memory.failcnt"; }
else
  CG=/sys/fs/cgroup/mentat-pod-$$; mkdir "$CG"; echo $((LIMIT << 20)) > "$CG/memory.max"
  peak() { echo $(( $(cat "$CG/memory.peak") >> 20 )); }; fails() { grep -E '^(max|oom_kill) ' "$CG/memory.events" | tr '\n' ' '; }
fi
"$OUT/node-api" dist/bench/pod-memory-api.js "$N" "$KIND" "$KUBELET" "$OUT" > "$OUT/api" 2> "$OUT/api.err" &
API=$!
for _ in $(seq 300); do [ "$(wc -l < "$OUT/api")" -ge 3 ] && break; kill -0 "$API" 2>/dev/null || break; sleep 0.2; done
[ "$(wc -l < "$OUT/api")" -ge 3 ] || { echo "pod-memory: the API server did not start: $(cat "$OUT/api.err")" >&2; exit 1; }
AGENT_KC=$(sed -n 1p "$OUT/api"); CONTROLLER_KC=$(sed -n 2p "$OUT/api"); RBAC=$(sed -n 3p "$OUT/api")
PORT=$((20000 + RANDOM % 20000))
if [ "$FOLLOWER" = 1 ]; then
  # The controller, outside the measured cgroup, until it leads and has published every node.
  mapfile -t CONTROLLER_ENV < <("$NODE" dist/bench/daemonset.js --controller control-plane mentat)
  CONTROLLER_ENV+=("KUBECONFIG=$CONTROLLER_KC" "MENTAT_METRICS_PORT=$((PORT + 1))" "MENTAT_METRICS_HOST=127.0.0.1" "MENTAT_LOG_LEVEL=info")
  env "${CONTROLLER_ENV[@]}" "$NODE" dist/src/main.js > "$OUT/controller.log" 2>&1 &
  CONTROLLER=$!
  published=no
  for _ in $(seq 600); do
    [ "$(PORT=$((PORT + 1)) metric mentat_node_list_nodes)" = "$N" ] && { published=yes; break; }
    kill -0 "$CONTROLLER" 2>/dev/null || break
    sleep 0.2
  done
  [ "$published" = yes ] || { echo "pod-memory: the controller did not publish $N nodes in 120 s: $(tail -5 "$OUT/controller.log")" >&2; exit 1; }
fi
[ "$WHO" = controller ] && KC=$CONTROLLER_KC || KC=$AGENT_KC
AGENT_ENV+=("KUBECONFIG=$KC" "NODE_NAME=$SELF" "MENTAT_METRICS_PORT=$PORT" "MENTAT_METRICS_HOST=127.0.0.1" "MENTAT_LOG_LEVEL=info")
if [ "$SHIPPED" != 1 ] || [ -n "$OPTS" ]; then AGENT_ENV+=("NODE_OPTIONS=$OPTS"); fi
if [ -n "$MESH" ]; then AGENT_ENV+=("MENTAT_MESH=$MESH"); fi
if [ -n "$MAX_TARGETS" ]; then AGENT_ENV+=("MENTAT_MAX_TARGETS=$MAX_TARGETS"); fi
env "${AGENT_ENV[@]}" sh -c "echo \$\$ > $CG/cgroup.procs; exec $MEASURED_NODE dist/src/main.js" > "$OUT/log" 2>&1 &
# Ready (an agent: the node list synced; the controller: it serves), then 10 s more.
for _ in $(seq 50); do [ -n "$(cat "$CG/cgroup.procs")" ] && break; sleep 0.1; done
ready=no
for _ in $(seq 600); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "localhost:$PORT/readyz" 2>/dev/null)" = 200 ]; then ready=yes; break; fi
  [ -n "$(cat "$CG/cgroup.procs")" ] || break
  sleep 0.2
done
if [ "$WHO" = controller ]; then
  # The controller's work is the list: until it has published every node (at most 2 min), then 10 s more.
  for _ in $(seq 600); do [ "$(metric mentat_node_list_nodes)" = "$N" ] && break; [ -n "$(cat "$CG/cgroup.procs")" ] || break; sleep 0.2; done
fi
sleep 10
ms=()
for _ in 1 2 3 4 5 6 7 8; do ms+=("$(curl -sf -o /dev/null -w '%{time_total}' "localhost:$PORT/metrics" 2>/dev/null || echo fail)"); sleep 1.5; done
series=$(curl -s "localhost:$PORT/metrics" | grep -c '^node_latency_count' || true)
alive=$([ -n "$(cat "$CG/cgroup.procs")" ] && echo yes || echo "no (killed)")
# What the process says of the node list on /metrics, not what it logs.
if [ "$WHO" = controller ]; then
  role="controller leader=$(metric mentat_controller_leader) published=$(metric mentat_node_list_nodes)"
else
  role=unknown
  for mode in published fallback direct; do [ "$(metric mentat_node_source "mode=\"$mode\"")" = 1 ] && role=$mode; done
fi
# Resident set as the kernel counts it for the process: peak (VmHWM), now, and its anonymous part
# (the heap; the rest is the node binary and libraries mapped from disk).
rss="-"
pid=$(head -1 "$CG/cgroup.procs" 2>/dev/null || true)
if [ -n "$pid" ]; then
  kib() { awk -v k="$1:" '$1 == k { print int($2 / 1024) }' "/proc/$pid/status"; }
  rss="peak=$(kib VmHWM)MiB now=$(kib VmRSS)MiB anon=$(kib RssAnon)MiB"
fi
settings=$([ "$SHIPPED" = 1 ] && echo shipped || echo defaults)
[ "$WHO" = controller ] && settings="shipped controller"
echo "nodes=$N ($KIND) binary_charged=$([ "${PAY_BINARY:-0}" = 1 ] || [ "${COLD:-0}" = 1 ] && echo yes || echo "if not cached") kubelet_updates=$([ "$KUBELET" = 1 ] && echo 5min || echo none) settings=$settings mesh=${MESH:-auto} max_targets=${MAX_TARGETS:-$([ "$SHIPPED" = 1 ] && echo shipped || echo default)} node_list=$role $RBAC ready=$ready limit=${LIMIT}MiB NODE_OPTIONS='${OPTS:-$([ "$SHIPPED" = 1 ] && echo shipped)}' cgroup_peak=$(peak)MiB limit-hits=$(fails) alive=$alive rss:$rss destinations=$series scrape_s=${ms[*]}"
