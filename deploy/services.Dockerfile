# syntax=docker/dockerfile:1.7-labs
# The image every abliterate service runs from: Node 20 running the TypeScript sources through
# tsx (there is no emit step). Pick the service with the command, e.g.
#   docker run abliterate/services services/scheduler/src/main.ts
# Build from the repository root:
#   docker build -f deploy/services.Dockerfile -t abliterate/services:dev .

FROM node:20-bookworm-slim AS deps
WORKDIR /app
# Manifests first, so the npm layer is cached until a dependency changes.
COPY package.json package-lock.json ./
COPY --parents libs/*/package.json services/*/package.json cli/package.json test/package.json ./
# onnxruntime-node would otherwise download CUDA libraries the services never use.
ENV ONNXRUNTIME_NODE_INSTALL_CUDA=skip
RUN npm ci --no-audit --no-fund \
 && npm cache clean --force

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    NODE_OPTIONS=--enable-source-maps
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY proto ./proto
COPY libs ./libs
COPY services ./services
COPY cli ./cli
USER node
# gRPC and the /metrics, /healthz, /readyz server (ports set by GRPC_PORT and METRICS_PORT).
EXPOSE 50051 9464
ENTRYPOINT ["node", "--import", "tsx"]
CMD ["services/scheduler/src/main.ts"]
