#!/usr/bin/env bash
# Finds or installs Temporal's time-skipping test server (for tests of hours-long waits that run
# in seconds) and prints the path of an executable that starts it as `<path> <port>`, the way
# @temporalio/testing's TestWorkflowEnvironment.createTimeSkipping runs it.
#
# Order: $TEMPORAL_TEST_SERVER_PATH, .cache/bin/temporal-test-server, the per-user cache, else the
# Java build of the server (io.temporal:temporal-test-server) from Maven Central, run with the
# machine's Java 11+. Without Java and Maven, tests fall back to the SDK's own download (needs
# internet).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${TEMPORAL_TEST_SERVER_VERSION:-1.31.0}"
repo_bin="$root/.cache/bin"
user_dir="${AMI_BACKUP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ami-backup}/temporal-test-server-$version"

if [ -n "${TEMPORAL_TEST_SERVER_PATH:-}" ]; then
  [ -x "$TEMPORAL_TEST_SERVER_PATH" ] || { echo "TEMPORAL_TEST_SERVER_PATH=$TEMPORAL_TEST_SERVER_PATH is not an executable" >&2; exit 1; }
  echo "$TEMPORAL_TEST_SERVER_PATH"; exit 0
fi
if [ -x "$repo_bin/temporal-test-server" ]; then echo "$repo_bin/temporal-test-server"; exit 0; fi

if [ ! -x "$user_dir/temporal-test-server" ]; then
  if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
    echo "Java and Maven are needed to install the time-skipping test server here (or set TEMPORAL_TEST_SERVER_PATH)." >&2
    exit 1
  fi
  echo "Fetching io.temporal:temporal-test-server:$version from Maven Central (first time on this machine only)..." >&2
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>ami-backup</groupId><artifactId>test-server</artifactId><version>1</version>
  <dependencies><dependency><groupId>io.temporal</groupId><artifactId>temporal-test-server</artifactId><version>$version</version></dependency></dependencies>
</project>
POM
  mkdir -p "$user_dir"
  (cd "$work" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$user_dir/lib" >&2)
  cat >"$user_dir/temporal-test-server" <<'SH'
#!/bin/sh
# Temporal's time-skipping test server (Java build): temporal-test-server <port>
dir="$(dirname "$(readlink -f "$0")")"
exec java -XX:TieredStopAtLevel=1 -Xshare:auto -cp "$dir/lib/*" io.temporal.testserver.TestServer "$@"
SH
  chmod +x "$user_dir/temporal-test-server"
fi
mkdir -p "$repo_bin"
ln -sf "$user_dir/temporal-test-server" "$repo_bin/temporal-test-server"
echo "$repo_bin/temporal-test-server"
