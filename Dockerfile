# syntax=docker/dockerfile:1
# Multi-stage build of a static cvmanager binary into a distroless, non-root image.
# Without a Docker engine, `make image` (hack/image) builds the same image for
# linux/amd64 and linux/arm64; test/packaging checks that the two agree.
ARG GO_VERSION=1.26
FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY pkg ./pkg
ARG VERSION=v0.0.0-dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -tags kustomize_disable_go_plugin_support \
    -ldflags "-s -w -X cvmanager.dev/cvmanager/pkg/version.Version=${VERSION} -X cvmanager.dev/cvmanager/pkg/version.Commit=${COMMIT}" \
    -o /out/cvmanager ./cmd/cvmanager
# The state commands and the Helm SDK they need live in a second binary, so
# the controller does not carry the SDK; `cvmanager state` runs it.
RUN CGO_ENABLED=0 go build -trimpath -tags kustomize_disable_go_plugin_support \
    -ldflags "-s -w -X cvmanager.dev/cvmanager/pkg/version.Version=${VERSION} -X cvmanager.dev/cvmanager/pkg/version.Commit=${COMMIT}" \
    -o /out/cvmanager-state ./cmd/cvmanager-state

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=v0.0.0-dev
LABEL org.opencontainers.image.title="cvmanager" \
      org.opencontainers.image.description="Continuous deployment for Kubernetes by registry polling" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/cvmanager /usr/local/bin/cvmanager
COPY --from=build /out/cvmanager-state /usr/local/bin/cvmanager-state
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/cvmanager"]
CMD ["run", "--bind-address=0.0.0.0", "--port=8081"]
