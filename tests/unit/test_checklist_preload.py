"""The checklist action plugin imports the kubernetes API modules its items use when it is loaded:
Ansible's controller loads it before forking one worker per cluster and task, so the workers
inherit them instead of importing them each (most of a 50-cluster checklist's time otherwise;
benchmarks/checklist.py)."""

from __future__ import annotations

import subprocess
import sys

from runbooks.collection import collections_path

PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
before = [m for m in sys.modules if m.startswith("kubernetes")]
import ansible_collections.watchkeeper.platform.plugins.action.checklist as action
print(before)
print(sorted(m for m in sys.modules if m.startswith("kubernetes.client.api.")))
print(sorted(action.PRELOADED))
"""


def test_loading_the_action_plugin_imports_the_kubernetes_api_modules_the_items_use() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, str(collections_path())],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "[]"  # a fresh interpreter: nothing imported before the plugin
    loaded = out[1]
    assert "kubernetes.client.api.core_v1_api" in loaded  # disk, wal, versions, patches
    assert "kubernetes.client.api.custom_objects_api" in loaded  # argocd
    assert out[2] == "['CoreV1Api', 'CustomObjectsApi']"
