#!/usr/bin/env bash
# Finds or installs the Temporal CLI (its dev server runs Temporal and the Web UI locally) and
# prints its path. Order: $TEMPORAL_CLI_PATH, `temporal` on PATH, .cache/bin/temporal, the
# per-user cache (~/.cache/ami-backup, shared by every clone on the machine), else `go install`
# from the Go module proxy into that cache (a few minutes the first time).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${TEMPORAL_CLI_VERSION:-v1.5.1}"   # later tags carry a replace directive go install refuses
repo_bin="$root/.cache/bin"
user_bin="${AMI_BACKUP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ami-backup}/temporal-$version"

if [ -n "${TEMPORAL_CLI_PATH:-}" ]; then
  [ -x "$TEMPORAL_CLI_PATH" ] || { echo "TEMPORAL_CLI_PATH=$TEMPORAL_CLI_PATH is not an executable" >&2; exit 1; }
  echo "$TEMPORAL_CLI_PATH"; exit 0
fi
if command -v temporal >/dev/null 2>&1; then command -v temporal; exit 0; fi
if [ -x "$repo_bin/temporal" ]; then echo "$repo_bin/temporal"; exit 0; fi

if [ ! -x "$user_bin/temporal" ]; then
  if ! command -v go >/dev/null 2>&1; then
    cat >&2 <<MSG
The Temporal CLI is not installed and Go is not available to build it.
Install it from https://docs.temporal.io/cli (or 'brew install temporal'), put it on PATH or set
TEMPORAL_CLI_PATH, and run this again.
MSG
    exit 1
  fi
  echo "Building the Temporal CLI $version with go install (first time on this machine only)..." >&2
  mkdir -p "$user_bin"
  GOBIN="$user_bin" go install "github.com/temporalio/cli/cmd/temporal@$version" >&2
fi
mkdir -p "$repo_bin"
ln -sf "$user_bin/temporal" "$repo_bin/temporal"
echo "$repo_bin/temporal"
