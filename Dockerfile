# syntax=docker/dockerfile:1
# dashscope-gateway: build with dev dependencies, run with production dependencies only.
#   docker build -t dashscope-gateway .
#   docker run --rm -p 8080:8080 --env-file .env dashscope-gateway

# --- build: compile TypeScript to dist/ ---------------------------------------------------------------------
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- runtime ------------------------------------------------------------------------------------------------
FROM node:20-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080
COPY package.json package-lock.json ./
# Production dependencies only: tsx, typescript, vitest and esbuild stay in the build stage.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
USER node
EXPOSE 8080
# Node itself, no curl in the slim image. /healthz needs no key and never calls DashScope.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node as PID 1 (not npm), so SIGTERM reaches the server and it drains in-flight requests before exiting.
CMD ["node", "dist/server.js"]
