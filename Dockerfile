# syntax=docker/dockerfile:1
# Production image of ledgerd (and ledgerctl): a static build on a
# distroless, non-root runtime. Build: docker build -t sirledger/ledgerd .

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so source edits do not refetch modules.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags='-s -w' \
      -o /out/bin/ ./cmd/... \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bin/ /usr/local/bin/
# DATA_DIR must be writable by the service user (65532, "nonroot"). In
# production NATS is external and secrets come from the environment, so
# nothing durable is kept here.
COPY --from=build --chown=65532:65532 /out/data /var/lib/ledgerd
ENV LEDGER_ENV=production \
    LISTEN_ADDR=:8080 \
    DATA_DIR=/var/lib/ledgerd \
    LOG_FORMAT=json
USER 65532:65532
WORKDIR /var/lib/ledgerd
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/ledgerd"]
