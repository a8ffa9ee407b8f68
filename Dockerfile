# flashgate: one image, two programs.  The gateway is the default command;
# the worker service runs the same image with the start command
# /app/flashgate-worker (see railway.toml).
#
#   docker build -t flashgate .
#   docker run -p 3001:3001 -e REDIS_URL=redis://host:6379 flashgate
#   docker run -e REDIS_URL=redis://host:6379 flashgate /app/flashgate-worker

# ---- build: compilers and -dev packages, a release build in /src/build
FROM debian:12-slim AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential pkg-config meson ninja-build \
        libmicrohttpd-dev libhiredis-dev libcurl4-openssl-dev libjson-c-dev \
        libpq-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN meson setup /src/build --buildtype=release -Dtests=false \
 && ninja -C /src/build gateway/flashgate-gateway worker/flashgate-worker

# ---- runtime: shared libraries only, a non-root user
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libmicrohttpd12 libhiredis0.14 libcurl4 libjson-c5 libpq5 libssl3 \
        ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin flashgate
WORKDIR /app
COPY --from=builder /src/build/gateway/flashgate-gateway /src/build/worker/flashgate-worker /app/
COPY --from=builder /src/public /app/public
USER flashgate
ENV PUBLIC_DIR=/app/public \
    PORT=3001
EXPOSE 3001
# Both programs drain on SIGTERM (the default stop signal).
CMD ["/app/flashgate-gateway"]
