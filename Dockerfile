# syntax=docker/dockerfile:1
# County HIE gateway: FHIR R4 over HTTP (8080) and HL7 v2 over MLLP (2575).
#
#   docker build -t county-hie-gateway .
#   docker run -p 8080:8080 -v hie-data:/data county-hie-gateway                    # embedded PGlite
#   docker run -p 8080:8080 -e DATABASE_URL=postgres://user:pw@db:5432/hie county-hie-gateway
ARG NODE_IMAGE=node:22-bookworm-slim

# ---- build: all dependencies, compile TypeScript to dist/ ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# Data folders read at run time; created if the checkout has none yet so the runtime COPY succeeds.
RUN npm run build && mkdir -p profiles mappings demo

# ---- runtime: production dependencies only, non-root ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/data
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
# Code and data stay owned by root: the gateway can read them but not change them.
COPY --from=build /app/dist ./dist
COPY --from=build /app/profiles ./profiles
COPY --from=build /app/mappings ./mappings
COPY --from=build /app/demo ./demo
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]
USER node
EXPOSE 8080 2575
# Slim images have no curl: ask node itself (global fetch) for /healthz on the configured port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The same heap limits as `npm start`: V8 otherwise lets garbage grow the heap to some 500 MB
# (live data is about 40 MB idle, 115 MB during a large extract load).
CMD ["node", "--max-old-space-size=192", "--max-semi-space-size=8", "dist/server.js"]
