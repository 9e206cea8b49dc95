"""The runbooks' one door to the Ansible collection's Python: its module_utils, typed.

The modules (plugins/modules/) and the runbooks' Python side share their logic through the
collection's module_utils (plugins/module_utils/): the gates and preconditions reuse what the
modules run instead of a copy of it. Ansible imports them as
`ansible_collections.watchkeeper.platform.plugins.module_utils.<name>`, a path that exists only
once runbooks.collection has linked the collection under a collections directory. This module
makes that import once, lazily (on first use, as the runbooks did before: importing a runbook
links nothing and loads no SDK), and re-exports each module_utils module the runbooks use as an
attribute:

    from runbooks import platform

    sts, pods = platform.kube.statefulset_pods(client, namespace, name)

Besides runbooks/collection.py (which locates and links the collection), this is the only
module of the package that reaches `ansible_collections.*`; tests/unit/test_layering.py keeps
it so.

Types: mypy reads the same files through the repository path `plugins.module_utils.<name>`
(mypy_path in pyproject.toml), so every attribute and call through this facade is checked
against the real module (names, arity, the annotations the module_utils carry). Inside
module_utils, their imports of each other go through `ansible_collections.*`, which mypy cannot
resolve: what one module_utils re-exports from another is Any.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from runbooks.collection import module_utils as _import

if TYPE_CHECKING:
    # The same files by their repository path, for mypy (see the docstring).
    from plugins.module_utils import agent_health as agent_health
    from plugins.module_utils import agent_shards as agent_shards
    from plugins.module_utils import argocd_app as argocd_app
    from plugins.module_utils import diagnose_probe as diagnose_probe
    from plugins.module_utils import hashring as hashring
    from plugins.module_utils import kube as kube
    from plugins.module_utils import opensearch_api as opensearch_api
    from plugins.module_utils import prom_tsdb as prom_tsdb
    from plugins.module_utils import prometheus_ha as prometheus_ha
    from plugins.module_utils import promhttp as promhttp
    from plugins.module_utils import promtext as promtext
    from plugins.module_utils import receiver_health as receiver_health
    from plugins.module_utils import s3 as s3
    from plugins.module_utils import s3_backup as s3_backup

#: The module_utils modules the runbooks use, each an attribute of this module.
MODULES = (
    "agent_health",  # the agent's WAL, queues and catch-up after a restart
    "argocd_app",  # an ArgoCD Application's sync and health (the gitops runbooks' gates)
    "agent_shards",  # scale-agents: hashmod shard names
    "diagnose_probe",  # the diagnostics' I/O (metrics-missing's freshness gate)
    "hashring",  # ring parsing and Thanos' config hash
    "kube",  # Kubernetes client, StatefulSet pods, pod proxy, polling
    "opensearch_api",  # the opensearch-py client
    "prom_tsdb",  # Prometheus server flags and TSDB path checks (backup-tsdb)
    "prometheus_ha",  # external labels and dedup checks (scale-prometheus)
    "promhttp",  # HTTP GET and PromQL instant queries
    "promtext",  # Prometheus text exposition parsing
    "receiver_health",  # receivers' error ratios and counters
    "s3",  # the boto3 S3 client
    "s3_backup",  # TSDB backup naming and manifests (restore-tsdb)
)


if not TYPE_CHECKING:
    # Hidden from mypy, which sees the imports above instead (and so reports a misspelt name).

    def __getattr__(name: str) -> ModuleType:
        """Import a module_utils module on first use and keep it as this module's attribute."""
        if name not in MODULES:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        module = _import(name)
        globals()[name] = module
        return module

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(MODULES))
