# The manager image: a static binary on distroless, run as the nonroot user.
# Override BASE_IMAGE to build from another registry, e.g. docker.io/library/golang:1.26
ARG BASE_IMAGE=golang:1.26
FROM ${BASE_IMAGE} AS builder
ARG TARGETOS
ARG TARGETARCH

WORKDIR /workspace
# The module downloads are a layer of their own, reused while go.mod and go.sum do not change.
COPY go.mod go.sum ./
RUN go mod download

# The Go sources, without tests (.dockerignore).
COPY . .

# TARGETOS and TARGETARCH come from docker buildx --platform; without it, the builder's platform.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o manager ./cmd

FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager .
USER 65532:65532

ENTRYPOINT ["/manager"]
