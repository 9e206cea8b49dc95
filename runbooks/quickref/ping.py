"""ping: prove that watchkeeper can run a playbook against every selected cluster.

Also the no-op runbook the engine-overhead benchmark compares with plain ansible-playbook.
"""

from __future__ import annotations

from runbooks.model import Runbook


class Ping(Runbook):
    name = "ping"
    summary = "Run an empty task on every selected cluster (engine and inventory smoke test)"
    playbook = "ping.yml"
