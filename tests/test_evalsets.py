"""The labelled sets in bench/evalsets: gold spans slice their documents, the
unstructured copies keep the same gold text, and the scorer ranks as stated."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

SETS = Path(__file__).resolve().parent.parent / "bench" / "evalsets"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"evalsets_{name}", SETS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(name: str) -> dict:
    return json.loads((SETS / f"{name}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("source", ["manpages", "readmes"])
def test_gold_spans_survive_heading_removal(source):
    structured, unstructured = _load(f"{source}-structured"), _load(f"{source}-unstructured")
    assert len(structured["questions"]) == len(unstructured["questions"]) >= 50
    for a, b in zip(structured["questions"], unstructured["questions"]):
        gold = structured["documents"][a["document"]][a["start"]:a["end"]]
        moved = unstructured["documents"][b["document"]][b["start"]:b["end"]]
        assert gold.strip() and moved.strip()
        if "\n-" not in gold and "\n=" not in gold and "\n#" not in gold:  # no heading inside the span
            assert moved == gold


def test_heading_removal_drops_headings_and_shifts_offsets():
    build = _module("build")
    text = "Intro\n\nUsage\n-----\n\nRun it.\n\n## Flags\n\nUse -v.\n"
    docs, questions = build.without_headings({"d": text}, [{"question": "q", "document": "d",
                                                            "start": text.index("Use"), "end": len(text) - 1}])
    assert docs["d"] == "Intro\n\n\nRun it.\n\n\nUse -v.\n"
    assert docs["d"][questions[0]["start"]:questions[0]["end"]] == "Use -v."


def test_first_relevant_hit_is_ranked():
    score = _module("score")
    docs = {"a": "0123456789" * 3, "b": "abcdefghij"}
    question = {"document": "a", "start": 12, "end": 15}

    def hit(name, start, end):
        return SimpleNamespace(source=f"set/{name}.md", start=start, end=end, text=docs[name][start:end])

    assert score.rank_of_gold([hit("b", 0, 5), hit("a", 0, 12), hit("a", 14, 20)], question, docs) == 3
    assert score.rank_of_gold([hit("a", 0, 12), hit("a", 15, 20)], question, docs) is None
    with pytest.raises(SystemExit, match="does not slice"):
        score.rank_of_gold([SimpleNamespace(source="set/a.md", start=0, end=3, text="xyz")], question, docs)
