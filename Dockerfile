# syntax=docker/dockerfile:1
#
# The ami-backup worker image (the CLI is in it too).
#
#   docker build -t ami-backup .
#   docker run --rm --stop-timeout 45 -e TEMPORAL_ADDRESS=temporal.example:7233 -e AWS_REGION=us-east-1 ami-backup
#   docker run --rm ami-backup node dist/src/client.js --help
#
# Two stages. `build` compiles the TypeScript and prebuilds the workflow bundle
# (dist/src/workflow-bundle.js, as in Temporal's `production` sample), so the worker starts without
# webpack. The runtime stage holds production dependencies and dist/ only, and runs as the
# unprivileged `node` user of the official image.
#
# Stopping: SIGTERM makes the worker take no new tasks and gives running activities
# AMI_BACKUP_SHUTDOWN_GRACE (30s) to finish. Docker kills a container 10 s after SIGTERM unless told
# otherwise: give it more than the grace (docker run --stop-timeout 45, compose stop_grace_period,
# Kubernetes terminationGracePeriodSeconds).
#
# test/deploy/container.test.ts replays this file's COPY, RUN, ENV, HEALTHCHECK and CMD steps
# outside Docker (no engine there): keep every RUN inside WORKDIR, and every COPY source in the
# .dockerignore allowlist.

ARG NODE_VERSION=22.23.5

# ---- build: full dependencies, tsc, the prebuilt workflow bundle -------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install script is needed (see the runtime stage); the compilers' native binaries
# (@swc/core-*) are platform packages npm picks by itself.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts ./scripts
RUN npm run build

# ---- runtime: production dependencies, dist/, non-root -----------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ARG NODE_VERSION
LABEL org.opencontainers.image.title="ami-backup" \
      org.opencontainers.image.description="Durable EC2 AMI backups into disaster-recovery regions, orchestrated by Temporal: the worker and the ami-backup CLI" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.base.name="docker.io/library/node:${NODE_VERSION}-bookworm-slim"
ENV NODE_ENV=production \
    AMI_BACKUP_LOG_FORMAT=json \
    AMI_BACKUP_METRICS_PORT=9464 \
    AMI_BACKUP_HEALTH_PORT=8081
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only, without install scripts: none is needed at run time.
# @temporalio/core-bridge has no install script: its tarball carries prebuilt binaries for five
# platforms (releases/<target>/index.node, ~137 MB in all). Only this platform's is kept, after
# checking it is there, with the bridge's Rust sources (unused at run time). The two packages that
# do have scripts only check things: @swc/core (falls back to wasm when its platform package is
# missing; it is not, and swc only runs when a worker bundles from source) and protobufjs
# (a version check of its CLI).
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && bridge=node_modules/@temporalio/core-bridge \
 && target="$(node -p "require('./$bridge/common').getPrebuiltTargetName()")" \
 && test -f "$bridge/releases/$target/index.node" \
 && find "$bridge/releases" -mindepth 1 -maxdepth 1 ! -name "$target" -exec rm -rf {} + \
 && rm -rf "$bridge/sdk-core" "$bridge/src" "$bridge/bridge-macros" "$bridge/Cargo.toml" "$bridge/Cargo.lock" \
 && node -e "require('@temporalio/worker')"
COPY --from=build /app/dist ./dist
# Everything above belongs to root and is read-only for the worker's user: `node` of the official
# image, named by number so Kubernetes' runAsNonRoot can verify it is not root.
USER 1000:1000
# 9464: Prometheus metrics (/metrics); 8081: /healthz (process up) and /readyz (worker polling).
EXPOSE 9464 8081
STOPSIGNAL SIGTERM
# slim images have no curl: Node's own fetch asks /readyz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.AMI_BACKUP_HEALTH_PORT || 8081) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/src/worker.js"]
