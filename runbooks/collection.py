"""Where the Ansible collection (playbooks, plugins) lives, and how Ansible finds it.

The repository root is the collection root (galaxy.yml, playbooks/, plugins/). The wheel carries
the same tree as `runbooks/_collection`. Ansible finds collections only under
`<path>/ansible_collections/<namespace>/<name>`, so we expose the root through a symlink in a
small per-user directory and point ANSIBLE_COLLECTIONS_PATH at it.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

NAMESPACE = "watchkeeper"
NAME = "platform"
FQCN_PREFIX = f"{NAMESPACE}.{NAME}"

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def collection_root() -> Path:
    """The directory holding galaxy.yml, playbooks/ and plugins/."""
    bundled = _PACKAGE_DIR / "_collection"
    if (bundled / "galaxy.yml").is_file():
        return bundled
    source = _PACKAGE_DIR.parent
    if (source / "galaxy.yml").is_file():
        return source
    raise RuntimeError(
        "the watchkeeper collection (galaxy.yml, playbooks/, plugins/) was not found next to the"
        " package; reinstall watchkeeper with `pip install .` from a full checkout"
    )


def playbook_path(name: str) -> Path:
    """Absolute path of a playbook shipped with watchkeeper."""
    return collection_root() / "playbooks" / name


def state_dir() -> Path:
    """Per-user state (collections link, lock files)."""
    base = os.environ.get("WATCHKEEPER_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "watchkeeper"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def collections_path() -> Path:
    """A directory to use as ANSIBLE_COLLECTIONS_PATH that resolves our FQCN."""
    root = collection_root()
    # One link directory per collection root so a checkout and an installed wheel never clash.
    key = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    base = state_dir() / "collections" / key
    link = base / "ansible_collections" / NAMESPACE / NAME
    if not (link.is_symlink() and link.resolve() == root):
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".{NAME}.{os.getpid()}")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(root, target_is_directory=True)
        os.replace(tmp, link)
    return base


def module_utils(name: str) -> ModuleType:
    """One of our collection's module_utils, for the runbooks' Python side (gates reuse the
    logic the modules run instead of a copy of it)."""
    path = str(collections_path())
    if path not in sys.path:
        sys.path.append(path)
    return importlib.import_module(
        f"ansible_collections.{NAMESPACE}.{NAME}.plugins.module_utils.{name}")
