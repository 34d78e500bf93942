# One Dockerfile, three binaries (hello, goodbye, greeter), two ways to build.
#
#   make images            -> target "prebuilt": packages static binaries built on the host
#                             (make build-linux) into FROM scratch. No base image is pulled,
#                             so this works with no registry at all (air-gapped, CI here).
#   docker build --build-arg BINARY=hello .
#                          -> the last stage: builds from source in a Go image, for machines
#                             that can pull one.
#
# The "prebuilt" stage must stay FIRST: the classic (non-BuildKit) builder runs every stage up
# to the requested target, and a golang stage before it would need a pull. No "# syntax="
# line: BuildKit would pull that frontend image from a registry before building anything
# (the built-in frontend reads every instruction used here).

ARG BINARY=hello

# ---- prebuilt: host-built static binary, FROM scratch ----
FROM scratch AS prebuilt
ARG BINARY
ARG TARGETARCH=amd64
COPY bin/linux-${TARGETARCH}/${BINARY} /app
# 65532 is the conventional "nonroot" uid; numeric so Pod Security "restricted"
# (runAsNonRoot) can verify it without an /etc/passwd in the image.
USER 65532:65532
ENTRYPOINT ["/app"]

# ---- build: from source (needs a Go base image) ----
FROM golang:1.26 AS build
ARG BINARY
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN case "${BINARY}" in \
      hello|goodbye) pkg=./services/${BINARY} ;; \
      greeter) pkg=./client/greeter ;; \
      *) echo "BINARY must be hello, goodbye or greeter, got '${BINARY}'" >&2; exit 1 ;; \
    esac && \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /app "$pkg"

FROM scratch AS image
COPY --from=build /app /app
USER 65532:65532
ENTRYPOINT ["/app"]
