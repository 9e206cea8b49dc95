#!/usr/bin/env bash
# The main job on a fresh machine: set up, bring the lab up (builds its binaries once, cached),
# then run the `status` runbook against the lab's clusters and the hashring runbook in check mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
watchkeeper lab up
eval "$(watchkeeper lab env)"
inventory=$(watchkeeper lab status --output json | python -c 'import json,sys; print(json.load(sys.stdin)["inventory"])')
watchkeeper inventory check -i "$inventory"
watchkeeper run status -i "$inventory"
# The Kubernetes side: the hashring built from the Ready receive pods, predicted (nothing changes).
watchkeeper run hashring -i "$inventory" --limit observability --check --diff
