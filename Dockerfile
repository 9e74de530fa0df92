# syntax=docker/dockerfile:1
# replicant's container image: a static binary, CA certificates, user 65532,
# nothing else (no shell, no libc). Build with `docker build -t replicant .`
# (or `buildah build`); run with the config mounted at /config:
#   docker run --rm --read-only -v "$PWD/cfg:/config:ro" replicant
#
# The `runtime` stage below is built as written by scripts/image/assemble
# too (the image test and the release), from the same image/rootfs.sh: edit
# the image here or there, never in a copy.

ARG RUST_VERSION=1.95
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends musl-tools file ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    scripts/release/build-binary --out /out/replicant \
 && image/rootfs.sh /out/replicant /rootfs

FROM scratch AS runtime
# the release passes the version, the commit and the repository URL
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=""
COPY --from=build /rootfs/ /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/replicant"]
LABEL org.opencontainers.image.title="replicant" \
      org.opencontainers.image.description="Mirror container images between registries over the OCI Distribution API" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
