# syntax=docker/dockerfile:1
# dashscope-gateway: one `npm ci` in the build stage (compile, then drop dev dependencies); the runtime stage only
# copies node_modules and dist, so building the image reaches the npm registry once.
#   docker build -t dashscope-gateway .
#   docker run --rm -p 8080:8080 --env-file .env dashscope-gateway
# Node 24 LTS, the version the project is tested on (scripts/node24.sh), on Debian 12 slim. Bump both together.
ARG NODE_IMAGE=node:24.22.3-bookworm-slim

# --- build: compile TypeScript to dist/, then keep only production dependencies ----------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# tsx, typescript, vitest and esbuild leave node_modules here, so the runtime stage copies the rest as is.
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# --- runtime ------------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
EXPOSE 8080
# Node itself, no curl in the slim image. /healthz needs no key and never calls DashScope.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node as PID 1 (not npm, not sh), so SIGTERM reaches the server and it drains (README "Production").
# docker stop waits 10 s by default, less than SHUTDOWN_TIMEOUT_MS (25 s): run with --stop-timeout 30.
STOPSIGNAL SIGTERM
CMD ["node", "dist/server.js"]
