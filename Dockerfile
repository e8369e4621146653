# backupd's image for docker-compose.yml: one static binary (the SQLite
# driver is pure Go) plus the PostgreSQL client tools for database dumps.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/backupd ./cmd/backupd

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates postgresql-client mariadb-client \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/backupd /usr/local/bin/backupd
ENTRYPOINT ["/usr/local/bin/backupd"]
