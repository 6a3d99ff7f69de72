"""The Qdrant backend beyond the contract suite (test_backend_contract.py runs on
it too): parity with SQLite + FAISS on the sample notes, its BM25 against a
brute-force reference, a kill -9 at every write of an ingest, its settings."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from ingest import ChunkSettings, Ingestor
from retrieval import Counts, Filter, Notebook, StorageError
from retrieval.qdrant_backend import QdrantBackend
from retrieval.qdrant_lexical import B, K1, terms
from service import wiring
from service.settings import SettingsError, load_settings
from tests.test_backend_contract import ALPHA, BETA, EMBED, doc_with, put

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ChunkSettings.of("recursive", max_tokens=64, overlap=0)


def all_chunks(backend: QdrantBackend) -> list[tuple]:
    """(id, doc id, start, end, text) of every chunk shown, sorted."""
    client, name = backend.store.shared.client, backend.store.chunks_name
    ids = [p.id for p in client.scroll(name, limit=100_000)[0]] if client.collection_exists(name) else []
    return sorted((cid, c.doc_id, c.start, c.end, c.text) for cid, c in backend.chunks(ids).items())


@pytest.fixture(scope="module", params=["client", "edge"])
def twins(tmp_path_factory, notes_dir, request):
    """The sample notes ingested alike into SQLite + FAISS and into a Qdrant folder, opened by
    qdrant-client's local mode or by Qdrant's own engine in process (real MiniLM vectors)."""
    from runtime import get_embedder

    embedder = get_embedder()
    root = tmp_path_factory.mktemp(f"twins-{request.param}")
    faiss_nb = Notebook(root / "faiss", embedder=embedder)
    qdrant_nb = Notebook(root / "unused", embedder=embedder, backend=QdrantBackend(path=root / "qdrant", engine=request.param))
    for nb in (faiss_nb, qdrant_nb):
        Ingestor(nb, SETTINGS).ingest_paths([notes_dir])
    yield faiss_nb, qdrant_nb
    faiss_nb.close()
    qdrant_nb.close()


def questions() -> list[str]:
    return [q["question"] for q in json.loads((ROOT / "samples" / "qa.json").read_text(encoding="utf-8"))]


def test_the_same_notes_give_the_same_chunks(twins):
    faiss_nb, qdrant_nb = twins
    assert faiss_nb.counts() == qdrant_nb.counts() and faiss_nb.counts().chunks > 50
    rows = faiss_nb.store.db.execute("SELECT id, doc_id, start, end, text FROM chunks").fetchall()
    assert sorted(rows) == all_chunks(qdrant_nb.backend)
    assert qdrant_nb.check().ok and qdrant_nb.status()["index"]["vectors"] == len(rows)


def test_dense_top5_equals_faiss_flat_and_hybrid_overlaps(twins):
    faiss_nb, qdrant_nb = twins
    assert faiss_nb.index().kind == "flat"
    overlaps = []
    for question in questions():
        dense = [[h.chunk_id for h in nb.search(question, k=5, mode="dense")] for nb in twins]
        assert dense[0] == dense[1], question
        # the ranking, not the cutoff: the two BM25s differ, and so would which weak hits go
        hybrid = [{h.chunk_id for h in nb.search(question, k=5, mode="hybrid", min_relative_score=0)} for nb in twins]
        overlaps.append(len(hybrid[0] & hybrid[1]) / 5)
    assert len(overlaps) >= 15 and sum(overlaps) / len(overlaps) >= 0.8, overlaps


def test_dense_scores_are_cosine_like_faiss(twins):
    faiss_nb, qdrant_nb = twins
    vector = faiss_nb.embed(["how do I pick a chunk size"])[0]
    a, b = (nb.backend.vector_search(vector, 10) for nb in twins)
    assert [i for i, _ in a] == [i for i, _ in b]
    assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-5)


def test_citations_slice_their_documents(twins):
    _, qdrant_nb = twins
    for question in questions()[:6]:
        for mode in ("hybrid", "lexical"):
            for hit in qdrant_nb.search(question, k=5, mode=mode):
                assert qdrant_nb.document(hit.doc_id).text[hit.start:hit.end] == hit.text
        answer = qdrant_nb.ask(question, min_score=0.0)
        for c in answer.citations:
            assert qdrant_nb.document(c.doc_id).text[c.start:c.end] == c.text


def reference_bm25(texts: dict[int, str], query: str, avg_len: float) -> dict[int, float]:
    """BM25 written out: Qdrant's IDF times the term-frequency part, summed over the query's words."""
    bags = {cid: Counter(terms(t)) for cid, t in texts.items()}
    lengths = {cid: sum(bag.values()) for cid, bag in bags.items()}
    scores: dict[int, float] = {}
    for word in set(terms(query)):
        having = sum(1 for bag in bags.values() if word in bag)
        idf = math.log(1 + (len(bags) - having + 0.5) / (having + 0.5))
        for cid, bag in bags.items():
            if bag[word]:
                tf = bag[word]
                part = tf * (K1 + 1) / (tf + K1 * (1 - B + B * lengths[cid] / avg_len))
                scores[cid] = scores.get(cid, 0.0) + idf * part
    return scores


@pytest.mark.parametrize("engine", ["client", "edge"])
def test_lexical_scores_are_bm25(tmp_path, engine):
    backend = QdrantBackend(path=tmp_path / "q", lexical_avg_len=6, engine=engine)
    try:
        gamma = doc_with("gamma.md", "Zebras and lions share the plains; zebras graze while lions rest.",
                         [("Zebras and lions share the plains;", EMBED.embed_batch(["a"])[0]),
                          ("zebras graze while lions rest.", EMBED.embed_batch(["b"])[0])])
        put(backend, ALPHA, BETA, gamma)
        texts = {c.id: c.text for _, chunks in (ALPHA, BETA, gamma) for c in chunks}
        for query in ("zebras", "lions hunting", "zebras graze plains", "sun and shade"):
            want = reference_bm25(texts, query, 6)
            got = dict(backend.lexical_search(query, 10))
            assert set(got) == set(want), query
            assert [got[i] for i in sorted(got)] == pytest.approx([want[i] for i in sorted(want)], rel=1e-4), query
    finally:
        backend.close()


def test_a_source_prefix_needs_no_folder_boundary(tmp_path):
    backend = QdrantBackend(path=tmp_path / "q")
    try:
        put(backend, ALPHA, BETA)
        alpha_ids = {c.id for c in ALPHA[1]}
        assert {i for i, _ in backend.vector_search(ALPHA[1][0].vector, 10, Filter(source_prefix="notes/al"))} == alpha_ids
        assert backend.lexical_search("ferns", 10, Filter(source_prefix="notes/al")) == []
        assert backend.vector_search(ALPHA[1][0].vector, 10, Filter(source_prefix="elsewhere")) == []
        fused = backend.hybrid_search("zebras graze", ALPHA[1][0].vector, 3, Filter(tags=("animals",)))
        assert fused[0][0] == ALPHA[1][0].id and {i for i, _ in fused} <= alpha_ids
    finally:
        backend.close()


# --- crashes during an ingest -------------------------------------------------------

CRASH_SETTINGS = ChunkSettings.of("recursive", max_tokens=24, overlap=0)


class Crash(BaseException):
    """Stands for the process dying: nothing after the failed write runs."""


def write_notes(folder: Path, variant: int, notes: int = 4) -> None:
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.md"):
        old.unlink()
    for i in range(notes):
        if (i + variant) % 4 == 3:
            continue  # removed in this variant
        body = " ".join(f"word{(i * 7 + j * variant) % 23}" for j in range(40))
        (folder / f"note{i}.md").write_text(f"# Note {i}\n\n{body}.\n\nVariant {variant if i % 2 else 0} ends it.\n",
                                            encoding="utf-8")


def ingest(store: Path, folder: Path, *, crash_at: int = 0, engine: str = "client") -> int:
    """Ingest ``folder`` into the Qdrant folder ``store`` (local mode, or ``engine``); with ``crash_at``,
    the client's ``crash_at``-th write raises ``Crash`` instead of writing. Returns the writes made."""
    backend = QdrantBackend(path=store, engine=engine)
    client = backend.store.shared.client
    writes = [0]
    for name in ("upsert", "delete", "set_payload"):
        def counted(*args, _write=getattr(client, name), **kwargs):
            writes[0] += 1
            if writes[0] == crash_at:
                raise Crash()
            return _write(*args, **kwargs)
        setattr(client, name, counted)
    try:
        nb = Notebook(store, embedder=EMBED, backend=backend)
        Ingestor(nb, CRASH_SETTINGS, batch_chunks=3).ingest_paths([folder], prune=True)
    except Crash:
        pass
    finally:
        backend.close()
    return writes[0]


def snapshot(store: Path, engine: str = "client") -> tuple[list[tuple], Counts]:
    backend = QdrantBackend(path=store, engine=engine)  # opening finishes or undoes a batch left half done
    try:
        report = backend.check()
        assert report.ok, report.problems
        chunks = all_chunks(backend)
        assert backend.counts().chunks == len(chunks)
        return chunks, backend.counts()
    finally:
        backend.close()


@pytest.mark.parametrize("engine", ["client", "edge"])
def test_a_crash_at_every_write_loses_and_duplicates_nothing(tmp_path, engine):
    folder, clean = tmp_path / "notes", tmp_path / "clean"
    write_notes(folder, 1)
    ingest(clean, folder, engine=engine)
    write_notes(folder, 2)  # edits, removes and adds notes
    total = ingest(clean, folder, engine=engine)
    expected = snapshot(clean, engine)
    assert total >= 10
    for crash_at in range(1, total + 1):
        store = tmp_path / f"crashed-{crash_at}"
        write_notes(folder, 1)
        ingest(store, folder, engine=engine)
        write_notes(folder, 2)
        assert ingest(store, folder, crash_at=crash_at, engine=engine) == crash_at
        snapshot(store, engine)
        ingest(store, folder, engine=engine)
        assert snapshot(store, engine) == expected, f"crashed at write {crash_at}"


CHILD = textwrap.dedent("""
    import sys
    from ingest import ChunkSettings, Ingestor
    from retrieval import Notebook
    from retrieval.qdrant_backend import QdrantBackend
    from tests.test_backend_contract import EMBED

    nb = Notebook(sys.argv[1], embedder=EMBED, backend=QdrantBackend(path=sys.argv[1], engine=sys.argv[3]))
    print("ready", flush=True)
    Ingestor(nb, ChunkSettings.of("recursive", max_tokens=24, overlap=0), batch_chunks=3).ingest_paths([sys.argv[2]], prune=True)
    print("done", flush=True)
""")


def test_kill_9_during_an_ingest_into_local_mode(tmp_path):
    kill_9_during_ingests(tmp_path, "client")


def kill_9_during_ingests(tmp_path: Path, engine: str) -> None:
    """kill -9 of a child ingesting into ``store`` at three random instants; each time the store
    opens consistent, and a last ingest gives exactly what a clean one does."""
    folder, clean, store = tmp_path / "notes", tmp_path / "clean", tmp_path / "store"
    write_notes(folder, 2, notes=40)
    ingest(clean, folder, engine=engine)
    expected = snapshot(clean, engine)
    rng = random.Random(15)
    killed_mid_ingest = 0
    for variant in (1, 2, 3):
        write_notes(folder, variant, notes=40)
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(store), str(folder), engine], stdout=subprocess.PIPE, text=True,
                                 env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.2, 1.5))
        killed_mid_ingest += child.poll() is None
        child.send_signal(signal.SIGKILL)
        child.wait(60)
        snapshot(store, engine)
    assert killed_mid_ingest >= 2, "the kills should land during the ingest"
    write_notes(folder, 2, notes=40)
    ingest(store, folder, engine=engine)
    assert snapshot(store, engine) == expected


@pytest.mark.parametrize("engine", ["client", "edge"])
def test_a_second_process_on_a_folder_is_refused_clearly(tmp_path, engine):
    backend = QdrantBackend(path=tmp_path / "q", engine=engine)
    try:
        other = subprocess.run([sys.executable, "-c", "import sys; from retrieval.qdrant_backend import QdrantBackend; "
                                "QdrantBackend(path=sys.argv[1], engine=sys.argv[2])", str(tmp_path / "q"), engine],
                               env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=60)
        assert other.returncode == 1 and "StorageError" in other.stderr and "one process at a time" in other.stderr
    finally:
        backend.close()


@pytest.mark.filterwarnings("ignore:Failed to obtain server version")  # qdrant-client's version probe, same cause
def test_an_unreachable_server_is_one_storage_error():
    with pytest.raises(StorageError, match=r"Qdrant at http://127\.0\.0\.1:9: collection_exists failed"):
        QdrantBackend(url="http://127.0.0.1:9", timeout=2)


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="either url"):
        QdrantBackend()
    with pytest.raises(ValueError, match="collection prefix"):
        QdrantBackend(path="/tmp/x", prefix="no spaces")


# --- settings ------------------------------------------------------------------------


def test_settings_choose_the_backend(tmp_path):
    assert wiring.storage_backend(load_settings({}), tmp_path) is None
    local = wiring.notebook(load_settings({"NOTELOOM_BACKEND": "qdrant", "NOTELOOM_QDRANT_COLLECTION": "team"}), tmp_path)
    try:
        assert isinstance(local.backend, QdrantBackend) and local.backend.store.identity == str((tmp_path / "qdrant").resolve())
        assert local.backend.store.chunks_name == "team_chunks" and local.counts() == Counts(0, 0)
    finally:
        local.close()
    with pytest.raises(SettingsError, match="NOTELOOM_BACKEND"):
        load_settings({"NOTELOOM_BACKEND": "milvus"})


def test_importing_the_backend_loads_neither_qdrant_client_nor_the_edge_engine():
    code = "import sys, retrieval.qdrant_backend; print([m for m in ('qdrant_client', 'qdrant_edge') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_readers_in_the_same_process_share_one_local_client(tmp_path):
    first, second = QdrantBackend(path=tmp_path / "q"), QdrantBackend(path=tmp_path / "q")
    put(first, ALPHA)
    assert second.counts() == Counts(1, 2)
    first.close()
    assert second.known_source("notes/alpha.md") is not None, "closing one leaves the other open"
    second.close()
