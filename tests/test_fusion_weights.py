"""Hybrid search's lexical weight (fusion), the settings that carry it, and the
default chunking's tiny-section joins."""

import math
from types import SimpleNamespace

import pytest

import chunkers
from ingest import ChunkSettings
from retrieval import RetrievalError, fuse
from retrieval.search import LEXICAL_WEIGHT, MIN_RELATIVE_SCORE, RRF_K, Searcher
from service import wiring
from service.settings import Settings, SettingsError, load_settings

DENSE = [(1, 0.9), (2, 0.8), (3, 0.7)]
LEXICAL = [(3, 12.0), (2, 9.0), (1, 1.0)]


def test_fuse_weights_each_ranking():
    equal = fuse([DENSE, LEXICAL])
    assert [cid for cid, _ in equal] == [1, 3, 2]  # 1 and 3 tie (ranks 1 and 3 of 60 + rank); the lower id first
    weighted = dict(fuse([DENSE, LEXICAL], weights=(1.0, 3.0)))
    assert math.isclose(weighted[3], 1 / (RRF_K + 3) + 3 / (RRF_K + 1))
    assert math.isclose(weighted[1], 1 / (RRF_K + 1) + 3 / (RRF_K + 3))
    assert sorted(weighted, key=lambda cid: -weighted[cid]) == [3, 2, 1]


@pytest.mark.parametrize("weights", [(1.0,), (1.0, 2.0, 3.0), (1.0, -1.0), (float("nan"), 1.0)])
def test_fuse_refuses_bad_weights(weights):
    with pytest.raises(RetrievalError, match="fusion weights"):
        fuse([DENSE, LEXICAL], weights=weights)


class Backend:
    """Just what ``Searcher`` reads: two rankings and the rows of their chunks."""

    def vector_search(self, vector, k, where=None):
        return DENSE[:k]

    def lexical_search(self, text, k, where=None):
        return LEXICAL[:k]

    def named_search(self, text, k, where=None):
        return []

    def chunks(self, ids):
        return {cid: SimpleNamespace(doc_id=cid, source=f"n{cid}.md", title="", start=0, end=1, text="x", headings=[])
                for cid in ids}


def ranked(searcher):
    return [hit.chunk_id for hit in searcher.search("a query", k=3)]


def test_the_lexical_weight_orders_hybrid_hits():
    embed = lambda texts: [[1.0]]  # noqa: E731
    assert ranked(Searcher(Backend(), embed, lexical_weight=1.0)) == [1, 3, 2]
    assert ranked(Searcher(Backend(), embed)) == [3, 2, 1]  # the default counts BM25 more
    assert LEXICAL_WEIGHT > 1
    assert [h.chunk_id for h in Searcher(Backend(), embed).search("q", k=3, mode="dense")] == [1, 2, 3]


@pytest.mark.parametrize("bad", [0, -1, 101, True, "2", None, float("nan")])
def test_a_bad_lexical_weight_is_refused_with_its_value(bad):
    with pytest.raises(RetrievalError, match="lexical_weight must be a number over 0") as caught:
        Searcher(Backend(), lambda texts: [[1.0]], lexical_weight=bad)
    assert str(caught.value).endswith(f"got {bad!r}")


@pytest.mark.parametrize("name, default, raw, want, bad", [
    ("lexical_weight", LEXICAL_WEIGHT, "1.5", 1.5, ("0", "-2", "lots", "1000")),
    ("min_relative_score", MIN_RELATIVE_SCORE, "0", 0.0, ("-0.1", "1.5", "lots", "nan")),  # 0: no cutoff
])
def test_the_search_settings_reach_the_notebook(tmp_path, name, default, raw, want, bad):
    env = f"NOTELOOM_{name.upper()}"
    assert getattr(Settings(), name) == default
    settings = load_settings({env: raw, "NOTELOOM_EMBEDDING_MODEL": "hashing"})
    assert getattr(settings, name) == want and settings.source(name) == f"env {env}"
    notebook = wiring.notebook(settings, tmp_path / "data")
    try:
        assert getattr(notebook.searcher, name) == want
    finally:
        notebook.close()
    for value in bad:
        with pytest.raises(SettingsError, match=env):
            load_settings({env: value})


def test_the_default_chunking_joins_tiny_sections():
    default = ChunkSettings.of()
    assert default == ChunkSettings()
    assert default.chunker().min_section_tokens == 32 and '"min_section_tokens": 32' in default.key
    assert ChunkSettings.of(max_tokens=128).chunker().min_section_tokens == 32
    text = "# ls\n\n## Name\n\nls - list directory contents\n\n## Synopsis\n\nls [OPTION]... [FILE]...\n"
    assert len(default.chunker()(text)) == 1  # three tiny sections, one chunk


def test_a_method_named_on_the_command_line_keeps_the_ingest_defaults():
    settings = Settings()
    assert wiring.chunking(settings, "hybrid").key == wiring.chunking(settings).key == ChunkSettings.of().key
    recursive = wiring.chunking(settings, "recursive").chunker()
    assert (recursive.max_tokens, recursive.overlap) == (256, 32)  # not the class's own 512/0
    assert "min_section_tokens" not in wiring.chunking(settings, "recursive").key  # hybrid's alone
    given = wiring.chunking(settings, "hybrid", max_tokens=512, overlap=0).chunker()
    assert (given.max_tokens, given.overlap, given.min_section_tokens) == (512, 0, 32)
    with pytest.raises(chunkers.UnknownChunkerError, match="'nope'"):
        wiring.chunking(settings, "nope")
