"""retrieval's public surface: ``__all__`` is what the package exports, imports
stay light, the parts import each other without cycles, and settings are
parameters (the environment is the service's business)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import retrieval
from retrieval import LLMConfig, resolve_data_dir

ROOT = Path(__file__).resolve().parent.parent


def test_all_lists_exactly_the_public_names():
    public = {n for n, v in vars(retrieval).items() if not n.startswith("_") and not type(v).__name__ == "module"}
    assert set(retrieval.__all__) == public
    assert all(getattr(retrieval, n) is not None for n in retrieval.__all__)


def test_importing_retrieval_loads_no_faiss_or_torch():
    code = "import sys, retrieval, ingest; print(sorted({m.split('.')[0] for m in sys.modules} & {'faiss', 'torch', 'httpx'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"


def _imports(path: Path) -> set[str]:
    """The sibling modules a retrieval module imports (``from .x import``), at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}


def test_the_parts_import_each_other_without_cycles():
    graph = {p.stem: _imports(p) for p in (ROOT / "retrieval").glob("*.py") if p.stem != "__init__"}

    def reaches(start: str, goal: str, seen: frozenset = frozenset()) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    cycles = sorted(m for m in graph if reaches(m, m))
    assert cycles == [], f"import cycles through {cycles}"
    assert "notebook" not in graph["answer"] and "notebook" not in graph["search"]


@pytest.mark.parametrize("package", ["retrieval", "ingest"])
def test_libraries_never_touch_the_environment(package):
    for path in (ROOT / package).glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} | {
            n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        assert not names & {"environ", "getenv", "putenv", "unsetenv"}, path.name


def test_the_data_folder_is_a_parameter(monkeypatch, tmp_path):
    monkeypatch.setenv("NOTELOOM_DATA", str(tmp_path / "from-env"))
    assert resolve_data_dir() == Path(".noteloom") and resolve_data_dir(tmp_path) == tmp_path


def test_llm_settings_are_checked():
    assert LLMConfig.of({"url": "http://x/v1"}) == LLMConfig("http://x/v1", "gpt-4o-mini", "")
    with pytest.raises(ValueError, match="unknown LLM setting 'modle'"):
        LLMConfig.of({"url": "http://x/v1", "modle": "m"})
    with pytest.raises(ValueError, match="non-empty"):
        LLMConfig("  ")
