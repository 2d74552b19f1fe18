"""The dependency rules of ARCHITECTURE.md, checked on the source."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "va": {"ca", "ra", "publisher", "revoca"},
    "ca": {"ra", "publisher", "va", "revoca"},
    "ra": {"publisher", "va", "revoca"},
    "publisher": {"ra", "revoca"},
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


PACKAGES = ("common", "store", "ca", "ra", "publisher", "va", "revoca", "benchmarks")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str) -> set[str]:
    """The project modules ``path`` imports, wherever in the file (a function's
    own import closes a loop as surely as one at the top), except under
    ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for child in ast.walk(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in PACKAGES}


def test_no_import_cycle_among_the_projects_modules():
    """The request path and every other reads top-down: no module imports
    itself through others (docs/ARCHITECTURE.md)."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                modules[_module_name(path)] = path
    graph = {
        name: {other for other in _imports(path, name) if other in modules and other != name}
        for name, path in modules.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                cycle = [*stack[stack.index(other) :], other]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if other not in state:
                visit(other)
        stack.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_common_imports_no_other_package():
    for path in (ROOT / "common").rglob("*.py"):
        bad = imported_packages(path) & (set(PACKAGES) - {"common"})
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_store_imports_no_role():
    """The store (tables, migrations, audit writer) sits below every role."""
    roles = {"ca", "ra", "va", "publisher", "revoca"}
    files = list((ROOT / "store").rglob("*.py"))
    assert files
    for path in files:
        bad = imported_packages(path) & roles
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
