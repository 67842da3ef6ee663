# syntax=docker/dockerfile:1
# Three images: the operator (target manager, the default: /manager only), the ThingSpace
# simulator used by config/sim (target sim: /thingspace-sim only) and the token sidecar
# (target proxy: /thingspace-proxy only, see examples/sidecar).
#   make docker-build IMG=...              (docker build --target manager)
#   make docker-build-sim SIM_IMG=...       (docker build --target sim)
#   make docker-build-proxy PROXY_IMG=...   (docker build --target proxy)
# `make image` builds the same three images without Docker (hack/image).

# Base images are pinned by digest (multi-arch index digests), so a rebuild of one commit gets the
# same bases; hack/image's TestDockerfile fails on a FROM without one. The digests were not resolved
# from the registry in the sandbox this was written in: they are the index digests that many public
# Dockerfiles pin for these tags (golang:1.26.5, gcr.io/distroless/static:nonroot). To move them:
#   docker buildx imagetools inspect golang:1.26 --format '{{json .Manifest.Digest}}'
#   crane digest gcr.io/distroless/static:nonroot
# and update the two ARGs (or pass --build-arg GO_IMAGE=... RUNTIME_IMAGE=...).
ARG GO_IMAGE=golang:1.26.5@sha256:3aff6657219a4d9c14e27fb1d8976c49c29fddb70ba835014f477e1c70636647
ARG RUNTIME_IMAGE=gcr.io/distroless/static:nonroot@sha256:e2e927ec666bae08560abb3c55d0659eceabb657f56b6782ab500a9fc7f555e3

# Build on the build host's platform and cross-compile for the target (no emulation needed for
# `docker buildx build --platform linux/amd64,linux/arm64`).
FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS builder
ARG TARGETOS
ARG TARGETARCH

WORKDIR /workspace
# Modules first, so source edits do not invalidate the download layer.
COPY go.mod go.sum ./
RUN go mod download

COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/
COPY pkg/ pkg/

# Static binaries (CGO_ENABLED=0) for distroless/static; -trimpath keeps build paths out of them.
ENV CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH}

# One build stage per binary: BuildKit builds only the stages the chosen target needs.
FROM builder AS build-manager
RUN go build -trimpath -o /out/manager ./cmd/manager

FROM builder AS build-sim
RUN go build -trimpath -o /out/thingspace-sim ./cmd/thingspace-sim

FROM builder AS build-proxy
RUN go build -trimpath -o /out/thingspace-proxy ./cmd/thingspace-proxy

# distroless/static: no shell, no package manager, CA certificates and tzdata included; :nonroot
# runs as uid/gid 65532, which satisfies runAsNonRoot in config/manager, config/sim and
# examples/sidecar.
FROM ${RUNTIME_IMAGE} AS sim
WORKDIR /
COPY --from=build-sim /out/thingspace-sim /thingspace-sim
USER 65532:65532
ENTRYPOINT ["/thingspace-sim"]

FROM ${RUNTIME_IMAGE} AS proxy
WORKDIR /
COPY --from=build-proxy /out/thingspace-proxy /thingspace-proxy
USER 65532:65532
ENTRYPOINT ["/thingspace-proxy"]

# Last, so a plain `docker build .` gives the operator image: /manager only, never the simulator.
FROM ${RUNTIME_IMAGE} AS manager
WORKDIR /
COPY --from=build-manager /out/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
