#!/usr/bin/env bash
# Everything the tests and the demo need, on a fresh clone: Node packages, the Temporal CLI,
# moto, the time-skipping test server. Idempotent; prints where the two binaries are.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
echo "temporal: $(bash scripts/install-temporal.sh)"
echo "moto:     $(bash scripts/install-moto.sh)"
# Temporal's time-skipping test server (Java, from Maven Central): tests of hours-long waits.
echo "test server: $(bash scripts/install-test-server.sh)"
# The checkers of the deployment files (no Docker engine needed): docker-compose, hadolint,
# kubernetes-validate. The tests install them too when missing; here they are ready up front.
bash scripts/install-checkers.sh | sed 's/^/checkers: /'
bash scripts/check-kubernetes.sh >/dev/null && echo "kubernetes manifests: valid (scripts/check-kubernetes.sh)"
