"""The package's layering, read from the source with `ast` (nothing is imported).

runbooks/ holds the framework at its top (cli, execute, engine, inventory, journal, report,
lock, metrics, registry, model, errors, collection, clients, gates, platform) and one package
per chapter of the operations guide (receivers, agents, backup, ...). Imports point one way:

    chapters -> gates / execute -> model / platform -> collection / module_utils

(docs/architecture.md). The lab (lab/watchkeeper_lab, a package of its own outside the product
wheel) is not scanned, only guarded: nothing but the CLI reaches it, and the product package
holds none of it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "runbooks"
ROOT = PACKAGE.parent
LAB_PACKAGE = ROOT / "lab" / "watchkeeper_lab"

#: The only modules that reach the Ansible collection's Python: collection.py locates and
#: links it, platform.py imports its module_utils for everyone else.
COLLECTION_DOORS = {"runbooks/collection.py", "runbooks/platform.py"}
#: The only module that may import the lab.
LAB_DOOR = "runbooks/cli.py"
#: Framework -> chapter imports allowed: the CLI's `query` and `logs` commands live in the
#: quick-reference chapter. (registry.py names the chapters' modules as strings: not imports.)
FRAMEWORK_TO_CHAPTER = {("runbooks/cli.py", "runbooks.quickref")}


@dataclass(frozen=True)
class Import:
    file: str  # relative to the repository, e.g. runbooks/agents/scale_agents.py
    line: int
    module: str  # the imported module, e.g. runbooks.gates
    name: str | None  # `from module import name`, when name is not itself a module
    in_function: bool  # inside a function (runs when called), not at module level

    def __str__(self) -> str:
        what = f"{self.module}.{self.name}" if self.name else self.module
        return f"{self.file}:{self.line} imports {what}" + (
            " (inside a function)" if self.in_function else "")


def sources() -> list[Path]:
    """Every Python file of runbooks/."""
    return sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


MODULES = {module_name(p) for p in sources()}
CHAPTERS = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))


def is_module(name: str) -> bool:
    if name in MODULES:
        return True
    if name == "watchkeeper_lab" or name.startswith("watchkeeper_lab."):  # not scanned: look
        path = LAB_PACKAGE.parent.joinpath(*name.split("."))
        return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()
    return False


def imports(path: Path) -> Iterator[Import]:
    """Every import in the file, relative ones resolved; `from pkg import name` counts as an
    import of pkg.name when that is a module of ours."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            in_function.update(id(n) for n in ast.walk(node) if n is not node)
    for node in ast.walk(tree):
        nested = id(node) in in_function
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(rel(path), node.lineno, alias.name, None, nested)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if is_module(full):
                    yield Import(rel(path), node.lineno, full, None, nested)
                else:
                    yield Import(rel(path), node.lineno, base, alias.name, nested)


def strings(path: Path) -> Iterator[tuple[int, str]]:
    """Every string constant in the file (docstrings and f-string parts included)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def chapter_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 2 and parts[0] == "runbooks" and parts[1] in CHAPTERS:
        return parts[1]
    return None


def is_framework(path: Path) -> bool:
    return path.parent == PACKAGE and path.name != "__init__.py"


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_scan_sees_the_package() -> None:
    """Guards the guards: the scan finds the framework, the chapters and their runbooks."""
    assert {"agents", "backup", "emergency", "quickref", "receivers"} <= set(CHAPTERS)
    assert {"runbooks.cli", "runbooks.gates", "runbooks.platform"} <= MODULES
    assert "runbooks.agents.restart_agent" in MODULES
    assert not any(within(m, "watchkeeper_lab") for m in MODULES)
    assert (LAB_PACKAGE / "__init__.py").is_file()
    assert not (PACKAGE / "lab").exists(), "the lab lives outside the product package"


def test_only_collection_and_platform_reach_the_collection() -> None:
    """(a) ansible_collections.* (imported or named in a string), the repository path of the
    module_utils (plugins.*) and collection.module_utils belong to collection.py and
    platform.py; every other module uses runbooks.platform."""
    found = []
    for path in sources():
        if rel(path) in COLLECTION_DOORS:
            continue
        for imp in imports(path):
            if within(imp.module, "ansible_collections") or within(imp.module, "plugins"):
                found.append(f"{imp}: use runbooks.platform")
            if imp.module == "runbooks.collection" and imp.name == "module_utils":
                found.append(f"{imp}: use runbooks.platform")
        for line, text in strings(path):
            if "ansible_collections" in text:
                found.append(f"{rel(path)}:{line} names ansible_collections in a string"
                             f" ({text[:60]!r}): use runbooks.platform")
    assert not found, "\n".join(found)


def test_only_the_cli_imports_the_lab() -> None:
    """(b) The lab is a tool of the CLI (`watchkeeper lab ...`); runbooks never depend on it."""
    found = [f"{imp}: only {LAB_DOOR} may import the lab"
             for path in sources() if rel(path) != LAB_DOOR
             for imp in imports(path) if within(imp.module, "watchkeeper_lab")]
    assert not found, "\n".join(found)


def test_the_framework_imports_no_chapter() -> None:
    """(c) The framework (the top-level modules, gates and platform included) knows no chapter:
    the registry lists the runbook modules by name and imports them at run time."""
    found = []
    for path in filter(is_framework, sources()):
        for imp in imports(path):
            chapter = chapter_of(imp.module)
            if chapter and (rel(path), f"runbooks.{chapter}") not in FRAMEWORK_TO_CHAPTER:
                found.append(f"{imp}: the framework must not import chapter {chapter!r}")
    assert not found, "\n".join(found)


def test_chapters_do_not_import_each_other() -> None:
    """(d) What two chapters share lives in runbooks/gates.py (or behind runbooks.platform),
    not in one of them."""
    found = []
    for path in sources():
        own = chapter_of(module_name(path))
        if own is None:
            continue
        for imp in imports(path):
            other = chapter_of(imp.module)
            if other and other != own:
                found.append(f"{imp}: chapter {own!r} imports chapter {other!r}; move the shared"
                             " piece to runbooks/gates.py")
    assert not found, "\n".join(found)


def test_no_import_cycle() -> None:
    """(e) The import graph of runbooks' modules (imports inside functions included) has no
    cycle. An import of a module is not counted as an import of its parent package."""
    graph: dict[str, dict[str, Import]] = {}
    for path in sources():
        edges = graph.setdefault(module_name(path), {})
        for imp in imports(path):
            if imp.module in MODULES and imp.module != module_name(path):
                edges.setdefault(imp.module, imp)
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path_stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path_stack.append(node)
        for target in sorted(graph.get(node, {})):
            if state.get(target) == 1:
                loop = [*path_stack[path_stack.index(target):], target]
                cycles.append(" -> ".join(loop) + "\n    " + "\n    ".join(
                    str(graph[a][b]) for a, b in pairwise(loop)))
            elif target not in state:
                visit(target)
        path_stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
