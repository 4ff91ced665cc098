# One image for every component: `orderly <component>` selects what runs
# (order, inventory, relay, all, migrate). Build from the repository root:
#   docker build --build-arg COMMIT=$(git rev-parse --short=12 HEAD) -t orderly:0.1.0 .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# .git stays out of the build context: the commit orderly_build_info reports
# comes in as an argument ("unknown" without one).
ARG COMMIT=unknown
ENV ORDERLY_BUILD_COMMIT=$COMMIT
# librdkafka is built from source by the rdkafka crate, with TLS and SASL
# against the image's OpenSSL (libssl-dev and pkg-config are part of
# rust:bookworm); protoc is vendored.
RUN cargo build --release --locked -p orderly-bin \
 && cp target/release/orderly /orderly

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates zlib1g libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /orderly /usr/local/bin/orderly
# The chart runs as this non-root user with a read-only root filesystem.
USER 65532:65532
ENV ORDERLY_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/orderly"]
CMD ["all"]
