"""The scripts outside the package (datasets/, benchmarks/) are run by hand to reproduce README
figures, so no other test imports them: every name they import from petridish must exist."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*ROOT.glob("datasets/**/*.py"), *ROOT.glob("benchmarks/*.py")])


def petridish_imports(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text(), str(path))
    return [(node.module, alias.name) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
            and node.module.split(".")[0] == "petridish" for alias in node.names]


def test_there_are_scripts_to_check() -> None:
    assert any(petridish_imports(p) for p in SCRIPTS)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_imported_name_exists(path: Path) -> None:
    missing = [f"{mod}.{name}" for mod, name in petridish_imports(path)
               if not hasattr(importlib.import_module(mod), name)]
    assert not missing, f"{path.relative_to(ROOT)} imports what petridish no longer has"
