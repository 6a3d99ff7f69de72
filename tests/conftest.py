import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
NOTES = ROOT / "samples" / "notes"


@pytest.fixture(scope="session")
def notes_dir() -> Path:
    return NOTES


@pytest.fixture(scope="session")
def markdown_notes() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(NOTES.glob("*.md"))}
