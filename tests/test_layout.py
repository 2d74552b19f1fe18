"""The dependency rules of ARCHITECTURE.md, checked on the source."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "va": {"ca", "ra", "publisher", "revoca"},
    "ca": {"ra", "publisher", "va", "revoca"},
    "ra": {"publisher", "va", "revoca"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependency_rules(package):
    files = list((ROOT / package).rglob("*.py"))
    assert files
    for path in files:
        bad = imported_packages(path) & FORBIDDEN[package]
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
    for path in (ROOT / package).rglob("*.pyx"):
        text = path.read_text()
        for other in FORBIDDEN[package]:
            assert f"from {other}" not in text and f"import {other}" not in text, path
