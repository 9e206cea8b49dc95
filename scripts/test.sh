#!/usr/bin/env bash
# The test command: set up, lint, then the whole pytest suite (real programs, no mocks).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
echo "== ruff";         ruff check runbooks lab tests benchmarks plugins
echo "== mypy";         mypy
echo "== ansible-lint"
# Resolve our FQCNs (watchkeeper.platform.*) the way the engine does.
ANSIBLE_COLLECTIONS_PATH=$(python -c 'from runbooks.collection import collections_path as p; print(p())') \
  ansible-lint -q playbooks
echo "== pytest"
# pytest exits 5 when it collects nothing: that is a failure here too.
set +e
pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
exit "$rc"
