# backupd's image for docker-compose.yml: two static builds of one command
# (backupd-server has every command, the API server and worker among them;
# backupd is the lean command-line tool and hands those commands to
# backupd-server; the SQLite driver is pure Go) plus the PostgreSQL and
# MariaDB client tools for database dumps.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/backupd-server ./cmd/backupd \
    && CGO_ENABLED=0 go build -trimpath -tags lean -o /out/backupd ./cmd/backupd

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates postgresql-client mariadb-client \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/backupd /out/backupd-server /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/backupd"]
