# github-p2p-cache: the caching proxy (`github-p2p-cache serve`) in a container.
#   docker build -t github-p2p-cache .
#   docker run -d -p 127.0.0.1:8787:8787 -p 9100:9100 -e CACHE_P2P_SHARED_SECRET -v ghcache:/var/lib/github-p2p-cache github-p2p-cache
# See docs/operations.md, "Running in a container".

# Build stage: dependencies (better-sqlite3 is built from source when no prebuilt binary can be fetched) and dist/.
FROM node:22-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY tsconfig.json tsconfig.build.json index.ts ./
COPY src ./src
COPY providers ./providers
COPY bin ./bin
COPY cjs ./cjs
# `npm ci` runs `prepare`, which builds dist/ from the sources copied above.
RUN npm ci --no-audit --no-fund \
 && npm prune --omit=dev --no-audit --no-fund

# Runtime stage: the built package and its production dependencies, run as the unprivileged `node` user.
FROM node:22-bookworm-slim
ENV NODE_ENV=production \
    CACHE_DIR=/var/lib/github-p2p-cache \
    CACHE_PROXY_HOST=0.0.0.0 \
    CACHE_PROXY_PORT=8787
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/cjs ./cjs
RUN mkdir -p /var/lib/github-p2p-cache && chown node:node /var/lib/github-p2p-cache && chmod 0700 /var/lib/github-p2p-cache
USER node
VOLUME ["/var/lib/github-p2p-cache"]
EXPOSE 8787 9100
# Healthy while GET /healthz answers 200 (503 while closing or when the cache is closed).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.CACHE_PROXY_PORT || 8787) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM (docker stop) drains in-flight requests and closes the cache; allow --stop-timeout 20.
STOPSIGNAL SIGTERM
# --min-semi-space-size=16 --heap-growing-percent=100: docs/operations.md, "Node flags" (Node refuses both in NODE_OPTIONS).
ENTRYPOINT ["node", "--min-semi-space-size=16", "--heap-growing-percent=100", "dist/bin/cli.js"]
CMD ["serve"]
