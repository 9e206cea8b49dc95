"""Each default is declared once. The hashring ConfigMap's name is ClusterConfig's default
(runbooks/inventory.py), handed to every playbook as `wk_defaults` by the engine; the Ready
timeout is READY_TIMEOUT there, the runbooks' ready_timeout param. No playbook or module of
the collection restates either as a literal, and the scale-receivers rollback hands the module
the same Thanos Receive options as the forward playbook."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from runbooks.inventory import READY_TIMEOUT, ClusterConfig, inventory_defaults

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = sorted((REPO / "playbooks").glob("*.yml")) + sorted(
    (REPO / "playbooks" / "tasks").rglob("*.yml"))
MODULES = sorted((REPO / "plugins" / "modules").glob("*.py")) + sorted(
    (REPO / "plugins" / "module_utils").glob("*.py"))
HASHRING = ClusterConfig.model_fields["hashring_configmap"].default
#: ready_timeout given the model's number: a play var, a `| default(N)`, a module option's
#: default. (backup_verify_serve's ready_timeout is its own: its local servers, 180 s.)
_N = rf"{READY_TIMEOUT:g}(?:\.0)?\b"
READY_LITERAL = re.compile(
    rf"ready_timeout\s*:\s*{_N}|ready_timeout\s*\|\s*default\(\s*{_N}"
    rf"|ready_timeout=dict\([^)]*default={_N}|ready_timeout:\s*\{{[^}}]*default:\s*{_N}")


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_the_model_holds_the_defaults() -> None:
    assert HASHRING == "thanos-receive-hashring"
    assert inventory_defaults()["hashring_configmap"] == HASHRING
    assert READY_TIMEOUT == 300.0


def test_no_playbook_or_module_restates_the_hashring_configmap() -> None:
    restated = [_rel(p) for p in PLAYBOOKS + MODULES if HASHRING in p.read_text()]
    assert restated == []


def test_no_playbook_or_module_restates_the_ready_timeout() -> None:
    restated = [f"{_rel(p)}: {m.group(0)}" for p in PLAYBOOKS + MODULES
                for m in READY_LITERAL.finditer(p.read_text())]
    assert restated == []


def test_runbook_params_take_ready_timeout_from_the_model() -> None:
    literal = []
    for path in sorted((REPO / "runbooks").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and node.target.id == "ready_timeout" and isinstance(node.value, ast.Call)
                    and node.value.args and isinstance(node.value.args[0], ast.Constant)):
                literal.append(f"{_rel(path)}:{node.lineno}")
    assert literal == []


def test_playbooks_fall_back_only_to_defaults_the_engine_provides() -> None:
    used = {m for p in PLAYBOOKS for m in re.findall(r"wk_defaults\.(\w+)", p.read_text())}
    assert "hashring_configmap" in used
    assert used <= set(inventory_defaults())


def _module_args(path: Path, module: str) -> dict[str, object]:
    """The options a playbook gives `module`: its play's module_defaults and the task's own."""
    args: dict[str, object] = {}
    for play in yaml.safe_load(path.read_text()):
        args.update((play.get("module_defaults") or {}).get(module) or {})
        for task in play.get("tasks") or []:
            args.update(task.get(module) or {})
    return args


def test_scale_receivers_rollback_gives_the_receive_options() -> None:
    module = "watchkeeper.platform.thanos_receive_scale"
    forward = _module_args(REPO / "playbooks" / "scale-receivers.yml", module)
    rollback = _module_args(REPO / "playbooks" / "scale-receivers-rollback.yml", module)
    shared = ("kubeconfig", "context", "namespace", "statefulset", "service", "configmap",
              "replication_factor", "endpoint_template", "mode", "ready_timeout")
    for option in shared:
        assert option in forward, option
        assert rollback.get(option) == forward[option], option
