#!/bin/sh
# docker-compose.yml's `temporal-setup` job (image temporalio/admin-tools): once the server is up,
# creates the namespace and registers the search attributes ami-backup runs carry
# (AmiBackupPolicy, AmiBackupInstanceId: Keyword), so the Web UI and `ami-backup list` filter by
# policy and instance. Safe to run again: what exists is left alone.
set -eu

address="${TEMPORAL_ADDRESS:-temporal:7233}"
namespace="${TEMPORAL_NAMESPACE:-default}"
retention="${NAMESPACE_RETENTION:-7d}"

# As Temporal's compose samples: talk to the server's IPv4 address (name resolution in the
# admin-tools image can prefer an address the server does not listen on).
host="${address%:*}"
port="${address##*:}"
ip="$(getent ahosts "$host" | awk '/STREAM/ { print $1; exit }')"
address="${ip:-$host}:$port"

# Retries a command: the server answers its port before every service in it is ready, and a new
# namespace takes a few seconds to reach every frontend.
retry() {
  n=0
  until "$@"; do
    n=$((n + 1))
    if [ "$n" -ge 30 ]; then echo "gave up: $*" >&2; return 1; fi
    sleep 2
  done
}

echo "Waiting for the Temporal server at $address ..."
retry temporal operator cluster health --address "$address"

if temporal operator namespace describe --address "$address" --namespace "$namespace" >/dev/null 2>&1; then
  echo "Namespace $namespace exists."
else
  retry temporal operator namespace create --address "$address" --namespace "$namespace" --retention "$retention"
  echo "Namespace $namespace created (retention $retention)."
fi

for name in AmiBackupPolicy AmiBackupInstanceId; do
  if temporal operator search-attribute list --address "$address" --namespace "$namespace" 2>/dev/null | grep -qw "$name"; then
    echo "Search attribute $name exists."
  else
    retry temporal operator search-attribute create --address "$address" --namespace "$namespace" --name "$name" --type Keyword
    echo "Search attribute $name registered (Keyword)."
  fi
done
