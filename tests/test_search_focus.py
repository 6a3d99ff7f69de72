"""``min_relative_score``: search returns fewer hits when the rest score far below the best."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from retrieval import RetrievalError
from retrieval.search import MIN_RELATIVE_SCORE, Searcher, relative_cutoff

# Chunk 1 leads both lists; 2 is strong by cosine only, 3 by BM25 only, 4 weak in both,
# 5 only in the dense list (weak), 6 only in the lexical list (strong).
DENSE = [(1, 0.80), (2, 0.76), (4, 0.40), (3, 0.30), (5, 0.20)]
LEXICAL = [(1, 10.0), (3, 9.0), (6, 8.5), (4, 2.0), (2, 1.0)]


class Backend:
    """Just what ``Searcher`` reads: three rankings and the rows of their chunks."""

    def __init__(self, dense=DENSE, lexical=LEXICAL, named=()):
        self.dense, self.lexical, self.named = dense, lexical, list(named)

    def vector_search(self, vector, k, where=None):
        return self.dense[:k]

    def lexical_search(self, text, k, where=None):
        return self.lexical[:k]

    def named_search(self, text, k, where=None):
        return self.named[:k]

    def chunks(self, ids):
        return {cid: SimpleNamespace(doc_id=cid, source=f"n{cid}.md", title="", start=10 * cid, end=10 * cid + 7,
                                     text=f"chunk {cid}", headings=[]) for cid in ids}


def searcher(default: float = 0.0, **backend) -> Searcher:
    return Searcher(Backend(**backend), lambda texts: [[1.0]], lexical_weight=1.0, min_relative_score=default)


def ids(hits) -> list[int]:
    return [hit.chunk_id for hit in hits]


def test_without_a_cutoff_every_hit_up_to_k_is_returned():
    everything = searcher().search("q", k=6)
    assert ids(searcher().search("q", k=6, min_relative_score=None)) == ids(everything)
    assert ids(searcher(0.8).search("q", k=6, min_relative_score=0)) == ids(everything), "0 turns the cutoff off"
    assert sorted(ids(everything)) == [1, 2, 3, 4, 5, 6]


def test_hybrid_search_uses_the_searchers_own_cutoff_unless_told_otherwise():
    assert MIN_RELATIVE_SCORE == Searcher(Backend(), lambda texts: [[1.0]]).min_relative_score > 0
    everything = ids(searcher().search("q", k=6))
    assert ids(searcher(0.8).search("q", k=6)) == [cid for cid in everything if cid in (1, 2, 3, 6)]
    assert ids(searcher(0.8).search("q", k=6, min_relative_score=0.1)) == everything
    # the other modes have no cutoff unless a search asks for one
    assert len(searcher(0.99).search("q", k=5, mode="dense")) == 5
    assert len(searcher(0.99).search("q", k=5, mode="lexical")) == 5


def test_hits_weak_in_both_scores_are_left_out_and_the_rest_keep_their_order():
    everything = ids(searcher().search("q", k=6))
    kept = searcher().search("q", k=6, min_relative_score=0.8)
    # 2: cosine 0.76 >= 0.8 * 0.80; 3 and 6: BM25 >= 0.8 * 10; 4 and 5 fail both bars
    assert ids(kept) == [cid for cid in everything if cid in (1, 2, 3, 6)]
    for hit in kept:  # offsets, text and scores are the chunk's, untouched
        assert (hit.start, hit.end, hit.text) == (10 * hit.chunk_id, 10 * hit.chunk_id + 7, f"chunk {hit.chunk_id}")
        assert hit.dense_score == dict(DENSE).get(hit.chunk_id) and hit.lexical_score == dict(LEXICAL).get(hit.chunk_id)


def test_hybrid_search_cuts_only_when_the_first_hit_leads_both_rankings():
    # 2 leads the dense list and 3 the lexical one: whichever comes first, the lists disagree
    split = dict(dense=[(2, 0.9), (1, 0.85), (4, 0.1)], lexical=[(3, 9.0), (1, 8.5), (4, 0.5)])
    assert len(searcher(**split).search("q", k=4, min_relative_score=0.99)) == 4
    # the same weak hit goes once one chunk leads both
    agreed = dict(dense=[(1, 0.9), (2, 0.85), (4, 0.1)], lexical=[(1, 9.0), (3, 8.5), (4, 0.5)])
    assert 4 not in ids(searcher(**agreed).search("q", k=4, min_relative_score=0.9))
    # dense and lexical searches have one ranking: nothing to agree with
    assert ids(searcher(**split).search("q", k=4, mode="dense", min_relative_score=0.99)) == [2]


def test_the_named_notes_ranking_joins_the_fusion_and_vouches_for_its_hits():
    plain = ids(searcher().search("q", k=6))
    # 5 is weak in the dense list and missing from BM25's; the named notes' list puts it first
    found = searcher(named=[(5, 7.0)]).search("q", k=6)
    ranked = ids(found)
    assert ranked.index(5) < plain.index(5) and ranked[0] == 1
    assert [h.named_score for h in found if h.chunk_id == 5] == [7.0] and found[0].named_score is None
    kept = ids(searcher(named=[(5, 7.0)]).search("q", k=6, min_relative_score=0.8))
    assert 5 in kept and 4 not in kept, "5 leads the named list; 4 is weak in every list"
    assert 5 not in ids(searcher().search("q", k=6, min_relative_score=0.8))


def test_a_stricter_fraction_keeps_fewer_hits_but_always_the_first():
    counts = [len(searcher().search("q", k=6, min_relative_score=f)) for f in (0.1, 0.5, 0.8, 0.9, 1.0)]
    assert counts == sorted(counts, reverse=True) and counts[0] == 6
    top = ids(searcher().search("q", k=6))[0]
    assert ids(searcher().search("q", k=6, min_relative_score=1.0)) == [top]
    # the first hit stays even when it is best in neither list (then hybrid search keeps them all)
    odd = searcher(dense=[(2, 0.9), (1, 0.1)], lexical=[(3, 5.0), (1, 0.1)])
    first = ids(odd.search("q", k=3))[0]
    assert ids(odd.search("q", k=3, min_relative_score=1.0))[0] == first
    assert ids(odd.search("q", k=3, mode="dense", min_relative_score=1.0)) == [2]


def test_lower_ranked_strong_hits_fill_in_for_weak_ones():
    # k=3 without a cutoff ends at a weak hit; with one, a strong hit further down takes its place
    everything = ids(searcher().search("q", k=6))
    kept = ids(searcher().search("q", k=3, min_relative_score=0.8))
    assert kept == [cid for cid in everything if cid in (1, 2, 3, 6)][:3]


def test_each_mode_uses_its_own_score():
    dense = ids(searcher().search("q", k=5, mode="dense", min_relative_score=0.9))
    assert dense == [1, 2]  # 0.76 >= 0.72; BM25 plays no part
    lexical = ids(searcher().search("q", k=5, mode="lexical", min_relative_score=0.85))
    assert lexical == [1, 3, 6]  # 8.5 >= 8.5; cosine plays no part


def test_a_list_without_a_positive_best_vouches_for_nothing():
    strong = relative_cutoff([[(1, -0.1), (2, -0.5)], [(2, 4.0), (3, 1.0)]], 0.5)
    assert [cid for cid in (1, 2, 3) if strong(cid, 2)] == [2]
    assert not relative_cutoff([[], []], 0.5)(1, 1)
    assert relative_cutoff([[(7, 0.5)], []], 1.0)(7, 7)
    # leaders that are not the first hit make every hit strong
    assert relative_cutoff([[(7, 0.5), (8, 0.1)]], 1.0, leaders=[7, 9])(8, 7)
    assert not relative_cutoff([[(7, 0.5), (8, 0.1)]], 1.0, leaders=[7, 7])(8, 7)


@pytest.mark.parametrize("bad", [-0.2, 1.01, 2, True, "0.5", float("nan"), math.inf, [0.5]])
def test_a_bad_fraction_is_refused_with_its_value(bad):
    with pytest.raises(RetrievalError, match="min_relative_score must be a number from 0 to 1") as caught:
        searcher().search("q", k=3, min_relative_score=bad)
    assert str(caught.value).endswith(f"got {bad!r}")
    with pytest.raises(RetrievalError, match="min_relative_score must be a number from 0 to 1"):
        Searcher(Backend(), lambda texts: [[1.0]], min_relative_score=bad)


TOPICS = {"kettle": "The kettle boils water for tea in three minutes.",
          "garden": "Tomatoes in the garden need water every morning in summer.",
          "bikes": "A bicycle chain wants oil after rain.",
          "taxes": "File the tax return before the end of April."}


def topic_notes(folder: Path) -> Path:
    notes = folder / "notes"
    notes.mkdir()
    for name, text in TOPICS.items():
        (notes / f"{name}.md").write_text(f"# {name}\n\n{text}\n", encoding="utf-8")
    return notes


def test_the_notebook_passes_it_through_and_hits_slice_their_documents(tmp_path):
    from ingest import Ingestor
    from retrieval import Notebook

    notes = topic_notes(tmp_path)
    nb = Notebook(tmp_path / "data", embedding_model="hashing")
    try:
        assert not Ingestor(nb).ingest_paths([notes]).failed
        everything = nb.search("kettle water tea", k=4, min_relative_score=0)
        kept = nb.search("kettle water tea", k=4, min_relative_score=0.9)
        assert len(everything) == 4 and 1 <= len(kept) < 4
        assert ids(kept) == [cid for cid in ids(everything) if cid in set(ids(kept))]
        assert Path(kept[0].source).stem == "kettle"
        for hit in kept:
            assert nb.document(hit.doc_id).text[hit.start:hit.end] == hit.text
        with pytest.raises(RetrievalError, match="min_relative_score"):
            nb.search("kettle", k=4, min_relative_score=1.5)
    finally:
        nb.close()


def test_the_http_api_the_mcp_tools_and_the_cli_take_it(tmp_path, capsys):
    from litestar.testing import TestClient

    from ingest import Ingestor
    from retrieval import Notebook
    from service.app import ServiceConfig, create_app
    from service.cli import main
    from service.mcp import NotebookTools

    data = tmp_path / "data"
    nb = Notebook(data, embedding_model="hashing")
    try:
        assert not Ingestor(nb).ingest_paths([topic_notes(tmp_path)]).failed
        want = [h.chunk_id for h in nb.search("kettle water tea", k=4, min_relative_score=0.9)]
        assert 1 <= len(want) < 4
        with TestClient(app=create_app(ServiceConfig(data_dir=str(data)), notebook=nb, warm=False)) as client:
            reply = client.post("/search", json={"query": "kettle water tea", "k": 4, "min_relative_score": 0.9})
            assert reply.status_code == 200 and [h["chunk_id"] for h in reply.json()["hits"]] == want
            everything = client.post("/search", json={"query": "kettle water tea", "k": 4, "min_relative_score": 0})
            assert len(everything.json()["hits"]) == 4, "0: no cutoff"
            for bad in (1.5, -1, "lots", [0.5]):
                refused = client.post("/search", json={"query": "kettle", "min_relative_score": bad})
                assert refused.status_code == 400 and "min_relative_score" in refused.json()["detail"], bad
            schema = client.get("/schema/openapi.json").json()["components"]["schemas"]
            field = json.dumps(schema["SearchRequest"]["properties"]["min_relative_score"])
            assert '"minimum": 0' in field and '"maximum": 1' in field  # litestar alone left out the 0
        tool = NotebookTools(nb).search("kettle water tea", k=4, min_relative_score=0.9)
        assert [h["chunk_id"] for h in tool["hits"]] == want
    finally:
        nb.close()
    assert main(["--data", str(data), "search", "kettle water tea", "-k", "4", "--min-relative-score", "0.9", "--json"]) == 0
    assert [h["chunk_id"] for h in json.loads(capsys.readouterr().out)["hits"]] == want
    assert main(["--data", str(data), "search", "kettle", "--min-relative-score", "2"]) == 2
    assert "min_relative_score must be a number from 0 to 1" in capsys.readouterr().err

