#!/usr/bin/env bash
# Set up a fresh Debian machine for watchkeeper: system packages, a virtualenv, the package.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need_apt+=(prometheus-alertmanager)
command -v prometheus-pushgateway >/dev/null || need_apt+=(prometheus-pushgateway)
command -v unzip >/dev/null || need_apt+=(unzip)
# The lab: git (GitOps repository), openssl (ServiceAccount key), Maven (OpenSearch zip).
command -v git >/dev/null || need_apt+=(git)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v mvn >/dev/null || need_apt+=(maven)
# Lab fault tests: a blocked port is an nftables drop rule scoped to one lab address and port.
command -v nft >/dev/null || need_apt+=(nftables)
# ArgoCD in the lab keeps its cache in Redis (the lab starts its own instance).
command -v redis-server >/dev/null || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# WATCHKEEPER_EDITABLE=1 for development; CI installs the wheel as users do.
# The lab (lab/: real programs for the tests, the demo and the benchmarks) is a package of its
# own beside the product, installed here for them; `watchkeeper lab` finds it when installed.
if [ "${WATCHKEEPER_EDITABLE:-0}" = 1 ]; then
  .venv/bin/python -m pip install -q -e ".[dev]" -e ./lab
else
  .venv/bin/python -m pip install -q ".[dev]" ./lab
fi
echo "setup: $(.venv/bin/watchkeeper --help >/dev/null && echo ok) ($(.venv/bin/python -P -c 'import runbooks; print(runbooks.__file__)'))"
