#!/usr/bin/env bash
# Validates deploy/kubernetes offline against the Kubernetes API schemas.
#
# - Every manifest (*.yaml except kustomization.yaml, which is kustomize's own file and not a
#   Kubernetes resource) is checked with `kubernetes-validate --strict` (unknown fields are errors),
#   against the oldest and the newest Kubernetes version checked here. kubernetes-validate is a PyPI
#   package that bundles the schemas, so nothing is downloaded at check time; it is installed once
#   into .cache/k8s-venv.
# - kustomization.yaml is checked by building it (`kubectl kustomize`, kubectl's built-in
#   kustomize) and validating the result the same way, when kubectl is installed; otherwise the
#   script says so and checks only that every file it lists exists.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DIR=deploy/kubernetes
VENV=.cache/k8s-venv
VALIDATE_VERSION=1.37.0
K8S_VERSIONS=(1.30.0 1.37.0)

mkdir -p .cache .tmp
# One installer at a time (a test and setup may run this together).
exec 9>.cache/k8s-venv.lock
flock 9
if [[ "$("$VENV/bin/kubernetes-validate" --version 2>/dev/null)" != "$VALIDATE_VERSION" ]]; then
  echo "installing kubernetes-validate $VALIDATE_VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$VALIDATE_VERSION"
fi
flock -u 9

manifests=()
for f in "$DIR"/*.yaml; do
  [[ "$(basename "$f")" == kustomization.yaml ]] || manifests+=("$f")
done

validate() {
  local version
  for version in "${K8S_VERSIONS[@]}"; do
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$@"
  done
}

validate "${manifests[@]}"
echo "ok: ${#manifests[@]} manifests valid (strict) for Kubernetes ${K8S_VERSIONS[*]}"

if command -v kubectl >/dev/null 2>&1; then
  built=.tmp/kustomize-build.yaml
  kubectl kustomize "$DIR" >"$built"
  validate "$built"
  echo "ok: kustomization.yaml builds (kubectl kustomize) into $(grep -c '^kind:' "$built") valid resources"
else
  echo "kubectl not found: kustomization.yaml not built; checking only that the files it lists exist"
  "$VENV/bin/python" - "$DIR" <<'PY'
import pathlib, sys, yaml
d = pathlib.Path(sys.argv[1])
missing = [r for r in yaml.safe_load((d / "kustomization.yaml").read_text())["resources"] if not (d / r).is_file()]
sys.exit(f"kustomization.yaml lists missing files: {missing}" if missing else 0)
PY
fi
