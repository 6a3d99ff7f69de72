"""The Chroma benchmark's scoring (bench/chroma_bench.py) on hand-checked cases."""

import importlib.util
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


def test_the_shared_data_slices_its_gold_excerpts():
    corpora, questions = bench.load(bench.DATA)
    assert len(corpora) == 5 and len(questions) == 472
    assert all(0 <= s < e <= len(corpora[x.corpus]) for x in questions for s, e in x.gold)
