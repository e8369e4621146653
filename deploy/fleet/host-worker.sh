#!/bin/sh
# docker-compose.yml's host workers: the first start enrols the host with
# the token fleet-setup left for it (over the compose network's plain HTTP:
# a real fleet reaches the server over HTTPS and pins its certificate);
# later starts run as the enrolled host.
set -eu
name="$1"
if [ -f /var/lib/backupd/host/enrolment.json ]; then
	exec backupd worker --config /etc/backupd/host.yaml
fi
until [ -s "/enrol/$name" ]; do sleep 2; done
BACKUPD_ENROL_TOKEN="$(cat "/enrol/$name")"
export BACKUPD_ENROL_TOKEN
exec backupd worker --config /etc/backupd/host.yaml --enrol http://backupd-server:8080 --insecure-http --name "$name"
