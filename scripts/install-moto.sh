#!/usr/bin/env bash
# Installs moto (the AWS emulator the tests and the demo run in server mode) into a private
# virtualenv and prints the path of its moto_server. Quick when already installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${MOTO_VERSION:-5.2.5}"
venv="$root/.cache/venv"
server="$venv/bin/moto_server"

if [ -n "${MOTO_SERVER_PATH:-}" ]; then echo "$MOTO_SERVER_PATH"; exit 0; fi
if [ -x "$server" ] && "$venv/bin/python" -c "import moto, sys; sys.exit(0 if moto.__version__ == '$version' else 1)" 2>/dev/null; then
  echo "$server"; exit 0
fi
python="${PYTHON:-$(command -v python3 || command -v python)}"
[ -n "$python" ] || { echo "Python 3 is needed to run moto (the AWS emulator); install python3." >&2; exit 1; }
echo "Installing moto[server]==$version into $venv ..." >&2
"$python" -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$version" >&2
echo "$server"
