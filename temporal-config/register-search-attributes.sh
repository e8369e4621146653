#!/bin/sh
# Registers backupd's custom search attributes (search-attributes.txt, the
# same list the dev server gets) with a Temporal cluster. Idempotent: an
# attribute that exists already is left alone. Used by docker-compose.yml;
# run it by hand against any cluster: TEMPORAL_ADDRESS=host:7233 ./register-search-attributes.sh
set -eu
dir=$(dirname "$0")
ns=${TEMPORAL_NAMESPACE:-default}
until temporal operator namespace describe --namespace "$ns" >/dev/null 2>&1; do
  echo "waiting for Temporal at ${TEMPORAL_ADDRESS:-127.0.0.1:7233} (namespace $ns)"; sleep 2
done
grep -v '^#' "$dir/search-attributes.txt" | grep '=' | while IFS='=' read -r name type; do
  if temporal operator search-attribute list --namespace "$ns" | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --namespace "$ns" --name "$name" --type "$type"
  fi
done
