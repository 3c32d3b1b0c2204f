# Parley: build the single executable with Bun, run it on a small glibc base as a non-root user.
FROM oven/bun:1.4.4 AS build
WORKDIR /app
COPY package.json bun.lock ./
RUN bun install --frozen-lockfile
COPY tsconfig.json drizzle.config.ts ./
COPY drizzle ./drizzle
COPY src ./src
# The web client, embedded into the executable by the build.
COPY web ./web
RUN bun run build

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/parley parley \
 && mkdir -p -m 0700 /var/lib/parley/data && chown -R parley /var/lib/parley
COPY --from=build /app/dist/parley /usr/local/bin/parley
USER parley
WORKDIR /var/lib/parley
ENV DATA_DIR=/var/lib/parley/data PORT=8080 HOST=0.0.0.0
VOLUME ["/var/lib/parley/data"]
EXPOSE 8080
# No curl in the slim image: the binary runs a Bun one-liner against its own /health.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD ["/usr/local/bin/parley", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/parley"]
CMD ["serve"]
