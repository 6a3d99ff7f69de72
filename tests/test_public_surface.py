"""Each package's public surface is its ``__all__``, and the packages use one
another only through public names: a rename inside one package cannot silently
break another."""

import ast
import importlib
import importlib.util
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("chunkers", "runtime", "ingest", "retrieval", "imagegen")
PACKAGES = LIBRARIES + ("service",)


@pytest.mark.parametrize("name", LIBRARIES)
def test_all_is_exactly_the_public_names(name):
    package = importlib.import_module(name)
    exported = package.__all__
    assert len(exported) == len(set(exported)), "duplicates in __all__"
    missing = [n for n in exported if not hasattr(package, n)]
    assert missing == [], f"{name}.__all__ names what the package lacks"
    public = {n for n, v in vars(package).items()
              if not n.startswith("_") and not isinstance(v, types.ModuleType) and n not in ("annotations",)}
    assert public - set(exported) == set(), f"public in {name} but not in __all__"


def _imports(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield path.relative_to(ROOT), node.module, [a.name for a in node.names]


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_use_each_other_through_public_names(package):
    wrong = []
    for path, module, names in _imports(package):
        top = module.split(".")[0]
        if top == package or top not in PACKAGES:
            continue
        for name in names:
            if name.startswith("_"):
                wrong.append(f"{path}: from {module} import {name} (private)")
            elif module == top and name not in importlib.import_module(top).__all__ and not importlib.util.find_spec(f"{top}.{name}"):
                wrong.append(f"{path}: from {module} import {name} (not in {top}.__all__)")
    assert wrong == []


def test_tests_import_no_private_name_of_the_packages():
    wrong = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                wrong += [f"{path.name}: from {node.module} import {a.name}" for a in node.names if a.name.startswith("_")]
    assert wrong == []
