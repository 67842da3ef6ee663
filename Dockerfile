# syntax=docker/dockerfile:1
# The thingspace-operator image: /manager (the operator, the entrypoint) and /thingspace-sim (the
# ThingSpace simulator, used by config/sim). Build with `make docker-build IMG=...`.

# Build on the build host's platform and cross-compile for the target (no emulation needed for
# `docker buildx build --platform linux/amd64,linux/arm64`).
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH

WORKDIR /workspace
# Modules first, so source edits do not invalidate the download layer.
COPY go.mod go.sum ./
RUN go mod download

COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/

# Static binaries (CGO_ENABLED=0) for distroless/static; -trimpath keeps build paths out of them.
ENV CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH}
RUN go build -trimpath -o manager ./cmd/manager \
 && go build -trimpath -o thingspace-sim ./cmd/thingspace-sim

# distroless/static: no shell, no package manager, CA certificates and tzdata included; :nonroot
# runs as uid/gid 65532, which satisfies runAsNonRoot in config/manager.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager /manager
COPY --from=builder /workspace/thingspace-sim /thingspace-sim
USER 65532:65532

ENTRYPOINT ["/manager"]
