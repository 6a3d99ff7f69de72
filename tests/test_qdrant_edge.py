"""The Qdrant backend on Qdrant's own engine in process (``engine="edge"``,
qdrant-edge-py): parity with SQLite + FAISS on the sample notes, kill -9 during
an ingest, one process per folder, and its setting. The contract suite
(test_backend_contract.py) and the crash at every write (test_qdrant.py) run on
it too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingest import Ingestor
from retrieval import Counts, Notebook, StorageError
from retrieval.qdrant_backend import QdrantBackend
from service import wiring
from retrieval.qdrant_store import ENGINES
from service.settings import QDRANT_ENGINES, SettingsError, load_settings
from tests.test_backend_contract import ALPHA, BETA, put
from tests.test_qdrant import ROOT, SETTINGS, all_chunks, kill_9_during_ingests, questions


@pytest.fixture(scope="module")
def twins(tmp_path_factory, notes_dir):
    """The sample notes ingested alike into SQLite + FAISS and into an edge shard folder (real MiniLM vectors)."""
    from runtime import get_embedder

    embedder = get_embedder()
    root = tmp_path_factory.mktemp("edge-twins")
    faiss_nb = Notebook(root / "faiss", embedder=embedder)
    edge_nb = Notebook(root / "unused", embedder=embedder, backend=QdrantBackend(path=root / "edge", engine="edge"))
    for nb in (faiss_nb, edge_nb):
        Ingestor(nb, SETTINGS).ingest_paths([notes_dir])
    yield faiss_nb, edge_nb
    faiss_nb.close()
    edge_nb.close()


def test_the_same_notes_give_the_same_chunks(twins):
    faiss_nb, edge_nb = twins
    assert faiss_nb.counts() == edge_nb.counts() and faiss_nb.counts().chunks > 50
    rows = faiss_nb.store.db.execute("SELECT id, doc_id, start, end, text FROM chunks").fetchall()
    assert sorted(rows) == all_chunks(edge_nb.backend)
    assert edge_nb.check().ok


def test_dense_top5_equals_faiss_flat_and_hybrid_overlaps(twins):
    faiss_nb, edge_nb = twins
    assert faiss_nb.index().kind == "flat"
    overlaps = []
    for question in questions():
        dense = [[h.chunk_id for h in nb.search(question, k=5, mode="dense")] for nb in twins]
        assert dense[0] == dense[1], question
        hybrid = [{h.chunk_id for h in nb.search(question, k=5, mode="hybrid")} for nb in twins]
        overlaps.append(len(hybrid[0] & hybrid[1]) / 5)
    assert len(overlaps) >= 15 and sum(overlaps) / len(overlaps) >= 0.8, overlaps


def test_dense_scores_are_cosine_like_faiss(twins):
    faiss_nb, _ = twins
    vector = faiss_nb.embed(["how do I pick a chunk size"])[0]
    a, b = (nb.backend.vector_search(vector, 10) for nb in twins)
    assert [i for i, _ in a] == [i for i, _ in b]
    assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-5)


def test_citations_slice_their_documents(twins):
    _, edge_nb = twins
    for question in questions()[:6]:
        for mode in ("hybrid", "lexical"):
            for hit in edge_nb.search(question, k=5, mode=mode):
                assert edge_nb.document(hit.doc_id).text[hit.start:hit.end] == hit.text


def test_kill_9_during_an_ingest_into_the_edge_engine(tmp_path):
    kill_9_during_ingests(tmp_path, "edge")


def test_what_a_write_acknowledged_survives_a_kill_9_without_close(tmp_path):
    """No flush, no close: the shards' write-ahead logs replay the writes at the next open."""
    code = ("import os, sys; from retrieval.qdrant_backend import QdrantBackend; "
            "from tests.test_backend_contract import ALPHA, BETA, put; "
            "b = QdrantBackend(path=sys.argv[1], engine='edge'); put(b, ALPHA, BETA); os.kill(os.getpid(), 9)")
    child = subprocess.run([sys.executable, "-c", code, str(tmp_path / "q")], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == -9, child.stderr
    backend = QdrantBackend(path=tmp_path / "q", engine="edge")
    try:
        assert backend.counts() == Counts(2, 4) and backend.check().ok
        assert backend.vector_search(ALPHA[1][0].vector, 1)[0][0] == ALPHA[1][0].id
    finally:
        backend.close()


def test_a_second_process_is_refused_clearly(tmp_path):
    backend = QdrantBackend(path=tmp_path / "q", engine="edge")
    try:
        other = subprocess.run([sys.executable, "-c", "import sys; from retrieval.qdrant_backend import QdrantBackend; "
                                "QdrantBackend(path=sys.argv[1], engine='edge')", str(tmp_path / "q")],
                               env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=60)
        assert other.returncode == 1 and "StorageError" in other.stderr and "one process at a time" in other.stderr
    finally:
        backend.close()


def test_a_folder_opens_only_with_the_engine_that_wrote_it(tmp_path):
    for writer, reader in (("client", "edge"), ("edge", "client")):
        folder = tmp_path / writer
        backend = QdrantBackend(path=folder, engine=writer)
        put(backend, ALPHA)
        backend.close()
        with pytest.raises(StorageError, match=f"^Qdrant folder .* holds the other engine's data than '{reader}'"):
            QdrantBackend(path=folder, engine=reader)


def test_bad_edge_configurations_are_refused():
    with pytest.raises(ValueError, match="engine must be one of client, edge"):
        QdrantBackend(path="/tmp/x", engine="rust")
    with pytest.raises(ValueError, match="edge engine opens a folder"):
        QdrantBackend(path=":memory:", engine="edge")
    with pytest.raises(ValueError, match="edge engine opens a folder"):
        QdrantBackend(url="http://127.0.0.1:9", engine="edge")


def test_settings_choose_the_edge_engine(tmp_path):
    nb = wiring.notebook(load_settings({"NOTELOOM_BACKEND": "qdrant", "NOTELOOM_QDRANT_ENGINE": "edge"}), tmp_path)
    try:
        assert nb.backend.store.engine == "edge" and (tmp_path / "qdrant" / "edge").is_dir()
        assert nb.counts() == Counts(0, 0)
    finally:
        nb.close()
    assert load_settings({}).qdrant_engine == "client"
    assert QDRANT_ENGINES == ENGINES  # the setting's choices are the store's
    with pytest.raises(SettingsError, match="NOTELOOM_QDRANT_ENGINE"):
        load_settings({"NOTELOOM_QDRANT_ENGINE": "server"})


def test_importing_the_backend_loads_no_edge_engine():
    code = "import sys, retrieval.qdrant_backend; print('qdrant_edge' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_closing_one_reader_leaves_the_other_open(tmp_path):
    first, second = (QdrantBackend(path=tmp_path / "q", engine="edge") for _ in range(2))
    put(first, ALPHA, BETA)
    assert second.counts() == Counts(2, 4)
    first.close()
    assert second.known_source("notes/alpha.md") is not None
    second.close()
