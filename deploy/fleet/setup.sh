#!/bin/sh
# docker-compose.yml's fleet-setup: once, an admin token made in the
# catalog, then an enrolment token for each demo host (gw-a, gw-b) left in
# the enrol volume, where each host's worker reads its own. A token already
# there, or a host already enrolled, is left alone.
set -eu
until backupd-server token create --role admin --name fleet-setup > /tmp/admin 2>/dev/null; do sleep 2; done
export BACKUPD_TOKEN="$(cat /tmp/admin)"
export BACKUPD_SERVER=http://backupd-server:8080
until backupd status > /dev/null 2>&1; do sleep 2; done
umask 077
for h in gw-a gw-b; do
	[ -s "/enrol/$h" ] && continue
	backupd host enrol-token --name "$h" --label site=compose > "/enrol/$h.tmp"
	mv "/enrol/$h.tmp" "/enrol/$h"
done
