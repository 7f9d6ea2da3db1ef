# velohunt: multi-stage build. cgo is on for SQLite (github.com/mattn/go-sqlite3).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=docker
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.Version=${VERSION}" -o /out/velohunt ./cmd/velohunt

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/velohunt --create-home velohunt
COPY --from=build /out/velohunt /usr/local/bin/velohunt
COPY templates /usr/share/velohunt/templates
COPY configs/velohunt.example.yaml /etc/velohunt/velohunt.example.yaml
USER velohunt
WORKDIR /usr/share/velohunt
VOLUME ["/var/lib/velohunt"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/velohunt"]
CMD ["serve", "-config", "/etc/velohunt/velohunt.yaml"]
