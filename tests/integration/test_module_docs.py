"""Every module's documentation parses with the real `ansible-doc` (shared option fragments
resolved): what `ansible-doc watchkeeper.platform.X` shows an operator. Six modules once
shipped DOCUMENTATION that YAML could not parse (a `: ` inside a plain scalar)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runbooks.collection import collection_root, collections_path

MODULES = sorted(p.stem for p in (collection_root() / "plugins" / "modules").glob("*.py")
                 if p.stem != "__init__")


@pytest.mark.parametrize("module", MODULES)
def test_module_documentation_parses(module: str) -> None:
    binary = Path(sys.executable).with_name("ansible-doc")
    proc = subprocess.run(
        [str(binary), "-j", f"watchkeeper.platform.{module}"], capture_output=True, text=True,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections_path())})
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)[f"watchkeeper.platform.{module}"]["doc"]
    assert doc["short_description"]
    assert doc.get("options"), f"{module} documents no options"
