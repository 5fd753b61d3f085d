# syntax=docker/dockerfile:1
#
# The suma-auth server image.
#   docker build --build-arg GIT_SHA="$(git rev-parse --short=12 HEAD)" -t suma-auth .
# Built with the project's Rust toolchain on Debian 12; runs on distroless/cc (Debian 12
# glibc, so the allocator tuning applies; CA certificates; no shell, no package manager)
# as a non-root user. The root filesystem can be mounted read-only: the server writes only
# to DATA_DIR, a volume. Nothing secret is baked in: keys and passwords come from the
# environment at run time. Base images are pinned by digest (Dependabot proposes bumps).

# --- toolchain + cargo-chef, which splits the dependency build into its own cached layer
FROM rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS chef
WORKDIR /src
RUN cargo install cargo-chef --locked --version 0.1.77

# --- the recipe: the workspace's manifests and lock file, without its sources
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# --- dependencies first (this layer changes only with Cargo.toml / Cargo.lock), then the server
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --package suma-auth --bin suma-auth
COPY . .
# The commit shown by `suma-auth --version` and in the `version` metric tag (the build
# script reads SUMA_AUTH_GIT_SHA; the build context has no .git). Declared after the
# dependency layer so a new commit does not rebuild the dependencies.
ARG GIT_SHA=unknown
ENV SUMA_AUTH_GIT_SHA=${GIT_SHA}
RUN cargo build --release --locked --package suma-auth --bin suma-auth \
    && install -D -m 0755 target/release/suma-auth /out/suma-auth \
    && install -d -m 0700 /out/data

# --- runtime
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
ARG GIT_SHA=unknown
LABEL org.opencontainers.image.title="suma-auth" \
      org.opencontainers.image.description="User registration and authentication service of SUMA Finance" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${GIT_SHA}" \
      com.datadoghq.tags.service="suma-auth" \
      com.datadoghq.tags.version="${GIT_SHA}"
COPY --from=builder /out/suma-auth /usr/local/bin/suma-auth
COPY --from=builder --chown=65532:65532 /out/data /var/lib/suma-auth
# The embedded default's home (development keys, SQLite file, mail files); with PostgreSQL,
# SMTP and keys from the environment nothing is written there. Both are volumes so that
# `docker run --read-only` works as it is.
ENV DATA_DIR=/var/lib/suma-auth
VOLUME ["/var/lib/suma-auth", "/tmp"]
USER 65532:65532
EXPOSE 8080
# GET /ready on PORT (DB and Redis reachable); no curl or shell in the image.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/suma-auth", "health"]
ENTRYPOINT ["/usr/local/bin/suma-auth"]
CMD ["serve"]
