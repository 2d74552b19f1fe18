"""The native modules' façades (va/fastocsp.py, va/fastlane.py): each binds
every name explicitly, from the implementation switched on; both
implementations export the same names (py-lmdb's check), the façade's
``__all__`` is exactly those, and the .pyi stub declares each with its
signature and a docstring. The twins mirror the native files one for one."""

import ast
import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

from common import native
from tests.conftest import native_module, needs_native

ROOT = Path(__file__).resolve().parent.parent
# façade: (native module, twin module, stub)
FACADES = {
    "va.fastocsp": ("va._fastocsp", "va._fastocsp_py", "va/_fastocsp.pyi"),
    "va.fastlane": ("va._fastlane", "va._fastlane_py", "va/_fastlane.pyi"),
}
# Each native source file and its twin, file for file.
TWIN_FILES = {
    "va/_fastocsp.pyx": "va/_fastocsp_py.py",  # the DER reader and the request parser
    "va/_responses.pxi": "va/_responses_py.py",  # the response encoder, included
    "va/_fastlane.pyx": "va/_fastlane_py.py",  # the HTTP fast lane's recognizer
}


def public(module: ModuleType) -> set[str]:
    """The names a module exports: not private, not a module, not an error
    class it raises (those are va.errors')."""
    return {
        name
        for name in dir(module)
        if not name.startswith("_")
        and not isinstance(getattr(module, name), ModuleType)
        and getattr(getattr(module, name), "__module__", None) != "va.errors"
    }


@pytest.mark.twin
@pytest.mark.parametrize("facade", sorted(FACADES))
def test_facade_all_is_the_twins_names(facade):
    module = importlib.import_module(facade)
    twin = importlib.import_module(FACADES[facade][1])
    assert len(set(module.__all__)) == len(module.__all__)
    assert set(module.__all__) == set(twin.__all__) == public(twin)
    assert public(module) == set(module.__all__) | {"IMPLEMENTATION"}


@needs_native
@pytest.mark.parametrize("facade", sorted(FACADES))
def test_both_implementations_export_the_same_names(facade):
    native_name, twin_name, _ = FACADES[facade]
    compiled, twin = native_module(native_name), importlib.import_module(twin_name)
    assert public(compiled) == public(twin)
    assert set(compiled.__all__) == set(twin.__all__)
    for name in twin.__all__:
        value = getattr(twin, name)
        if not callable(value):
            assert getattr(compiled, name) == value, name


@pytest.mark.twin
@pytest.mark.parametrize("facade", sorted(FACADES))
def test_facade_binds_the_implementation_switched_on(facade):
    """Native by default (the build must provide it); the twin under
    REVOCA_NO_EXTENSIONS=1."""
    module = importlib.import_module(facade)
    native_name, twin_name, _ = FACADES[facade]
    if native.extensions_allowed():
        chosen, expected = native_module(native_name), "native"
    else:
        chosen, expected = importlib.import_module(twin_name), "python"
    assert expected == module.IMPLEMENTATION
    for name in module.__all__:
        assert getattr(module, name) is getattr(chosen, name), name


@pytest.mark.twin
def test_signer_switch():
    """va.signing chooses through the same switch; its native module is optional."""
    from va import signing

    built = native.load("va._evpsign")
    if built is None:
        assert signing.EVPSigner is None and signing.IMPLEMENTATION == "python"
    else:
        assert signing.EVPSigner is built.EVPSigner and signing.IMPLEMENTATION == "native"


def _stub(path: str) -> dict[str, ast.AST]:
    """The public top-level declarations of a .pyi file, by name."""
    tree = ast.parse((ROOT / path).read_text())
    found = {}
    body = tree.body
    for index, node in enumerate(body):
        if isinstance(node, ast.FunctionDef):
            found[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            following = body[index + 1] if index + 1 < len(body) else None
            documented = (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            )
            found[node.target.id] = node if documented else None
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                found[target.id] = None
    return {name: node for name, node in found.items() if not name.startswith("_")}


@pytest.mark.twin
@pytest.mark.parametrize("facade", sorted(FACADES))
def test_stub_declares_every_name_with_its_signature(facade):
    _, twin_name, stub = FACADES[facade]
    twin = importlib.import_module(twin_name)
    declared = _stub(stub)
    assert set(declared) == set(twin.__all__)
    for name, node in declared.items():
        assert node is not None, f"{stub}: {name} has no docstring"
        if isinstance(node, ast.FunctionDef):
            assert ast.get_docstring(node), f"{stub}: {name} has no docstring"
            assert node.returns is not None, f"{stub}: {name} has no return type"
            arguments = [a for a in node.args.args]
            assert all(a.annotation is not None for a in arguments), name
            defaults = [None] * (len(arguments) - len(node.args.defaults)) + [
                ast.literal_eval(d) for d in node.args.defaults
            ]
            stubbed = [(a.arg, d) for a, d in zip(arguments, defaults, strict=True)]
            real = [
                (p.name, None if p.default is inspect.Parameter.empty else p.default)
                for p in inspect.signature(getattr(twin, name)).parameters.values()
            ]
            assert stubbed == real, f"{stub}: {name}"


@needs_native
@pytest.mark.parametrize("facade", sorted(FACADES))
def test_native_signatures_match_the_twin(facade):
    native_name, twin_name, _ = FACADES[facade]
    compiled, twin = native_module(native_name), importlib.import_module(twin_name)
    for name in twin.__all__:
        if callable(getattr(twin, name)):
            ours = inspect.signature(getattr(compiled, name)).parameters
            theirs = inspect.signature(getattr(twin, name)).parameters
            assert [(p.name, p.default) for p in ours.values()] == [
                (p.name, p.default) for p in theirs.values()
            ], name


def _defined_functions(path: str) -> set[str]:
    """Public functions a source file defines (``def name(`` at the top level)."""
    return set(re.findall(r"^def ([a-z]\w*)\(", (ROOT / path).read_text(), re.MULTILINE))


@pytest.mark.twin
def test_twin_files_mirror_the_native_files():
    for native_file, twin_file in TWIN_FILES.items():
        assert _defined_functions(native_file) == _defined_functions(twin_file), native_file
    # _fastocsp_py re-exports the encoder's names, as _fastocsp.pyx includes it.
    from va import _fastocsp_py, _responses_py

    assert set(_responses_py.__all__) < set(_fastocsp_py.__all__)
    for name in _responses_py.__all__:
        assert getattr(_fastocsp_py, name) is getattr(_responses_py, name), name
