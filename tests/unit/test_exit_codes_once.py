"""The exit codes are defined once, in runbooks/errors.py: no other module of the product or
the lab assigns an exit-code constant (EXIT_*) or an error class's `exit_code` to a literal,
and what `watchkeeper --help` and the README document is that one table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from runbooks import cli, errors

REPO = Path(__file__).resolve().parents[2]
HOME = REPO / "runbooks" / "errors.py"


def _targets(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign | ast.AugAssign):
        targets = [node.target]
    else:
        return []
    names: list[str] = []
    for target in targets:
        for sub in ast.walk(target):
            if isinstance(sub, ast.Name):
                names.append(sub.id)
            elif isinstance(sub, ast.Attribute):
                names.append(sub.attr)
    return names


def _literal_ints(value: ast.AST | None) -> bool:
    return value is not None and any(
        isinstance(sub, ast.Constant) and type(sub.value) is int for sub in ast.walk(value))


def exit_code_assignments(path: Path) -> list[str]:
    """'path:line name' for each exit-code constant given a literal integer in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        value = getattr(node, "value", None)
        for name in _targets(node):
            if (name.startswith("EXIT_") or name == "exit_code") and _literal_ints(value):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
    return found


def test_only_errors_py_assigns_exit_codes() -> None:
    sources = sorted((REPO / "runbooks").rglob("*.py")) + sorted((REPO / "lab").rglob("*.py"))
    elsewhere = [hit for path in sources if path != HOME for hit in exit_code_assignments(path)]
    assert elsewhere == []
    assert exit_code_assignments(HOME), "the scan finds errors.py's own constants"


def test_error_classes_use_the_constants() -> None:
    codes = {code for code, _ in errors.EXIT_MEANINGS}
    for cls in (errors.WatchkeeperError, errors.UsageError, errors.InventoryError,
                errors.PreconditionFailed, errors.LockedError, errors.SecretError):
        assert cls.exit_code in codes


def test_help_epilog_is_the_one_table() -> None:
    assert errors.exit_codes_text() == cli.EXIT_CODES
    assert cli.EXIT_BROKEN_PIPE is errors.EXIT_BROKEN_PIPE
    helped = [int(m) for m in re.findall(r"^  (\d+) ", cli.EXIT_CODES, re.M)]
    assert helped == [code for code, _ in errors.EXIT_MEANINGS]


def test_readme_table_lists_the_same_codes() -> None:
    readme = (REPO / "README.md").read_text()
    table = readme.split("### Exit codes", 1)[1].split("###", 1)[0]
    documented = [int(m) for m in re.findall(r"^\| (\d+) \|", table, re.M)]
    assert documented == [code for code, _ in errors.EXIT_MEANINGS]
