"""The Chroma benchmark's scoring (bench/chroma_bench.py) on hand-checked cases."""

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("chroma_bench", Path(__file__).resolve().parent.parent / "bench" / "chroma_bench.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules["chroma_bench"] = bench  # dataclasses look their module up
_spec.loader.exec_module(bench)


def q(*gold, corpus="a"):
    return bench.Question("?", corpus, tuple(gold))


def r(start, end, corpus="a"):
    return bench.Retrieved(corpus, start, end)


def test_exact_hit_scores_one():
    assert bench.score(q((10, 20)), [r(10, 20)]) == (1.0, 1.0, 1.0)


def test_other_corpus_costs_precision_and_covers_nothing():
    recall, precision, iou = bench.score(q((0, 10)), [r(0, 10), r(0, 30, corpus="b")])
    assert recall == 1.0
    assert precision == pytest.approx(10 / 40)
    assert iou == pytest.approx(10 / 40)


def test_overlapping_hits_count_twice_in_length_once_in_coverage():
    recall, precision, iou = bench.score(q((0, 10)), [r(0, 10), r(5, 15)])
    assert recall == 1.0
    assert precision == pytest.approx(10 / 20)
    assert iou == pytest.approx(10 / 20)


def test_partial_cover_adds_the_missed_gold_to_iou():
    recall, precision, iou = bench.score(q((0, 10), (20, 30)), [r(5, 25)])
    assert recall == pytest.approx(10 / 20)
    assert precision == pytest.approx(10 / 20)
    assert iou == pytest.approx(10 / (20 + 10))


def test_no_hits():
    assert bench.score(q((0, 10)), []) == (0.0, 0.0, 0.0)


def _dataset(folder, start, end):
    (folder / "corpora").mkdir()
    (folder / "corpora" / "a.md").write_text("Alpha beta gamma delta.", encoding="utf-8")
    ref = json.dumps([{"content": "beta", "start_index": start, "end_index": end}])
    with open(folder / "questions_df.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["question", "references", "corpus_id"], ["Which?", ref, "a"]])


def test_load_reads_gold_spans(tmp_path):
    _dataset(tmp_path, 6, 10)
    corpora, questions = bench.load(tmp_path)
    assert corpora == {"a": "Alpha beta gamma delta."}
    assert questions == [bench.Question("Which?", "a", ((6, 10),))]


def test_load_refuses_a_span_that_does_not_slice_its_excerpt(tmp_path):
    _dataset(tmp_path, 5, 9)
    with pytest.raises(SystemExit, match="does not slice"):
        bench.load(tmp_path)
