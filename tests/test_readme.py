"""The README's examples run, and the packages stay light on import."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_readme_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    block = "\n".join(lines[:8])
    assert "make demo" in block and "make test" in block


def test_readme_library_example_runs():
    code = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "'recursive'" in proc.stdout.splitlines()[-1]


@pytest.mark.parametrize("package", ["chunkers", "imagegen", "ingest", "retrieval"])
def test_packages_import_without_ml_frameworks(package):
    code = f"import sys, {package}; print([m for m in ('torch', 'diffusers', 'faiss', 'open_clip', 'sentence_transformers') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"
