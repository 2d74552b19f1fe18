"""The dependency rules of docs/ARCHITECTURE.md, checked on the source."""

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "va": {"ca", "ra", "publisher", "revoca", "acmesrv", "enroll"},
    "ca": {"ra", "publisher", "va", "revoca", "acmesrv", "enroll"},
    "ra": {"publisher", "va", "revoca", "acmesrv", "enroll"},
    "publisher": {"ra", "revoca", "acmesrv", "enroll"},
    # The protocol fronts use the RA and the CA's public API, and not each other.
    "acmesrv": {"publisher", "va", "revoca", "enroll"},
    "enroll": {"publisher", "va", "revoca", "acmesrv"},
    # The scanners return what they saw; the RA records and judges it.
    "discover": {"store", "ca", "ra", "publisher", "va", "revoca", "acmesrv", "enroll"},
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


PACKAGES = (
    "common",
    "store",
    "ca",
    "ra",
    "publisher",
    "va",
    "acmesrv",
    "enroll",
    "discover",
    "revoca",
    "benchmarks",
)


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


# The CA's tables that only ``ca`` writes (store/tables/ca.py).
CA_WRITTEN = {"certificates", "cas", "compromised_keys"}
_SQL_WRITE = re.compile(
    r"\b(?:insert\s+into|delete\s+from|update)\s+[\"`]?"
    r"(certificates|cas|compromised_keys)\b[\"`]?\s",
    re.IGNORECASE,
)


def _table_name(node: ast.AST) -> str | None:
    """``certificates`` for ``certificates`` or ``tables.certificates``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def table_writes(path: Path) -> list[str]:
    """Where ``path`` inserts into, updates or deletes from a CA table:
    insert(t) / update(t) / delete(t), t.insert() / t.update() / t.delete(),
    and SQL text doing the same."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            verb = _table_name(func)
            if verb in ("insert", "update", "delete") and node.args:
                target = _table_name(node.args[0])
                if target in CA_WRITTEN:
                    found.append(f"line {node.lineno}: {verb}({target})")
            if isinstance(func, ast.Attribute) and func.attr in ("insert", "update", "delete"):
                target = _table_name(func.value)
                if target in CA_WRITTEN:
                    found.append(f"line {node.lineno}: {target}.{func.attr}()")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _SQL_WRITE.search(node.value + " ")
            if match:
                found.append(f"line {node.lineno}: SQL writing {match.group(1)}")
    return found


def test_table_writes_finds_every_form(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "insert(certificates).values(x=1)\n"
        "update(tables.cas).values(x=1)\n"
        "certificates.delete()\n"
        "text('UPDATE certificates SET status = 1')\n"
        "insert(end_entities)\n"
        "'update the certificates of an entity'\n"
    )
    assert sorted(w.split(":")[0] for w in table_writes(sample)) == [
        "line 1",
        "line 2",
        "line 3",
        "line 4",
    ]


def test_only_ca_writes_the_certificates_and_cas_tables():
    """The CA is the only writer of its certificates, CAs and blocklist of
    compromised keys: the RA records inventory certificates through the
    CA's API. The deployed packages are
    checked (and store/migrations, which builds the tables, is exempt);
    tests and benchmarks fill stores directly to set up their cases."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        packages = tomllib.load(f)["tool"]["setuptools"]["packages"]
    roots = {name.split(".")[0] for name in packages} - {"ca"}
    assert "ra" in roots and "store" in roots
    for package in sorted(roots):
        for path in (ROOT / package).rglob("*.py"):
            if path.is_relative_to(ROOT / "store" / "migrations"):
                continue
            writes = table_writes(path)
            assert not writes, f"{path.relative_to(ROOT)} writes a CA table: {writes}"


def ca_private_names() -> set[str]:
    """Every underscore name the ``ca`` package defines: module-level names,
    functions, methods, class attributes and ``self._x`` attributes."""
    names = set()
    for path in (ROOT / "ca").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _private_uses_of_ca(path: Path, private: set[str]) -> list[str]:
    """Private names of ``ca`` that ``path`` imports (from ca._x, or _name
    from ca.x), and the CA's underscore attributes it reads off objects
    other than its own (``service._insert_ca``, ``self.ca._issuing_profile``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] == "ca":
                bad = [p for p in parts if p.startswith("_")]
                bad += [a.name for a in node.names if a.name.startswith("_")]
                if bad:
                    found.append(f"line {node.lineno}: from {node.module} import {bad}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "ca" and any(p.startswith("_") for p in parts):
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in private
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"line {node.lineno}: .{node.attr}")
    return found


def test_ra_uses_no_private_name_of_ca():
    """The RA reaches the CA through its public API (ca/catalog.py for
    reads, CAService's methods and its audit writer for the rest)."""
    private = ca_private_names()
    assert {"_issuing_profile", "_insert_ca"} <= private  # it sees the CA's private methods
    files = list((ROOT / "ra").rglob("*.py"))
    assert files
    for path in files:
        uses = _private_uses_of_ca(path, private)
        assert not uses, f"{path.relative_to(ROOT)} uses private names: {uses}"


PARTS = ("common", "store", "ca", "ra", "va", "publisher")
COMMAND = re.compile(r"\brevoca (ca|ra|va|db|publisher|serve|audit|config|demo)\b")


def _raise_texts(node: ast.Raise) -> list[str]:
    if node.exc is None:
        return []
    return [
        n.value
        for n in ast.walk(node.exc)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def test_errors_speak_of_the_problem_not_of_the_cli():
    """Error classes carry a code, never a CLI exit code (revoca/cli_util.py
    maps codes), and what the parts raise names no `revoca` command (the CLI
    adds hints by code)."""
    from revoca.cli_util import EXIT_CODES

    seen_raises = 0
    for package in PARTS:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            where = path.relative_to(ROOT)
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    names = {
                        t.id
                        for stmt in node.body
                        if isinstance(stmt, ast.Assign)
                        for t in stmt.targets
                        if isinstance(t, ast.Name)
                    }
                    assert "exit_code" not in names, f"{where}: {node.name} has an exit_code"
                elif isinstance(node, ast.Raise):
                    seen_raises += 1
                    for text in _raise_texts(node):
                        assert not COMMAND.search(text), f"{where}:{node.lineno} names {text!r}"
    assert seen_raises > 200  # the walk saw the parts' raise statements
    assert set(EXIT_CODES.values()) <= set(range(2, 13)) - {9}


def test_a_va_process_loads_no_sql_store():
    """`revoca va serve` runs alone with its LMDB directory: importing its
    command and the worker must not load SQLAlchemy or alembic (about 300
    modules and 20 MB of a worker's memory)."""
    import subprocess
    import sys

    code = (
        "import sys, revoca.cli_va, va.app, va.worker; "
        "print(sorted(m for m in ('sqlalchemy', 'alembic', 'ca.service') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
