"""What every storage backend must do (``retrieval.Backend``), run against each
entry of ``BACKENDS``. A new backend (Qdrant, say) adds one factory there:
``factory(folder) -> Backend``, where calling it again on the same folder opens
the same store. Nothing here depends on how a backend survives a crash; the
SQLite + FAISS crash protocol has its own tests (test_crash_safety.py)."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from ingest import ChunkSettings, Ingestor
from retrieval import (Backend, ChunkRecord, Collection, Counts, Document, DocumentInfo, DocumentNotFoundError,
                       DocumentRecord, DocumentSummary, EmbeddingInfo, EmbeddingMismatchError, Filter, Hit, Known,
                       Notebook, SqliteFaissBackend, StoredChunk, WriteLockTimeoutError)
from retrieval.qdrant_backend import QdrantBackend
from retrieval.records import chunk_id, document_id

DIM = 32
MODEL = "fake-hashing-32"

BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "sqlite-faiss": SqliteFaissBackend,
    "qdrant-local": lambda folder: QdrantBackend(path=folder),
    "qdrant-edge": lambda folder: QdrantBackend(path=folder, engine="edge"),
}


class WordHashEmbedder:
    """Bag of words hashed (crc32) into ``DIM`` dimensions, L2-normalised:
    deterministic across processes, and texts sharing words are near."""

    name = MODEL
    dim = DIM

    def embed_batch(self, texts):
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, zlib.crc32(word.strip(".,?!").encode()) % DIM] += 1.0
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-6)
        return out


EMBED = WordHashEmbedder()


@pytest.fixture(params=sorted(BACKENDS))
def open_backend(request, tmp_path):
    """Opens the backend under test on one folder; every opened one is closed at the end."""
    opened: list[Backend] = []

    def open_() -> Backend:
        backend = BACKENDS[request.param](tmp_path / "store")
        opened.append(backend)
        return backend

    yield open_
    for backend in opened:
        backend.close()


@pytest.fixture()
def backend(open_backend) -> Backend:
    return open_backend()


def unit(vector) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32)
    return v / np.linalg.norm(v)


def axis(i: int, tilt: int | None = None) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    if tilt is not None:
        v[tilt] = 0.5
    return unit(v)


def doc_with(source: str, text: str, pieces: list[tuple[str, np.ndarray]], *, tags=(), collection="notes",
             **extra) -> tuple[DocumentRecord, list[ChunkRecord]]:
    """A document whose chunks are ``pieces`` (each a substring of ``text``, with its vector)."""
    content_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
    doc = DocumentRecord(f"{collection}/{source}", source.rsplit(".", 1)[0], "markdown", text, content_hash,
                         tags=list(tags), chunker="test", collection=collection, path=source, **extra)
    chunks = []
    for i, (piece, vector) in enumerate(pieces):
        start = text.index(piece)
        chunks.append(ChunkRecord(chunk_id(doc.source, content_hash, start, start + len(piece)), i, start,
                                  start + len(piece), len(piece.split()), [f"section {i}"], piece, vector))
    return doc, chunks


def put(backend: Backend, *docs, timeout: float | None = None) -> None:
    with backend.writer(timeout, embedding_model=MODEL) as session:
        session.put(list(docs))


ALPHA = doc_with("alpha.md", "Zebras graze. Lions hunt at night.",
                 [("Zebras graze.", axis(0)), ("Lions hunt at night.", axis(1))], tags=["animals", "savanna"],
                 mtime=10.0, size=34, stamp="s1")
BETA = doc_with("beta.md", "Ferns like shade. Cacti like sun.",
                [("Ferns like shade.", axis(2)), ("Cacti like sun.", axis(0, tilt=3))], tags=["plants"])


def test_the_backend_implements_the_protocol(backend):
    assert isinstance(backend, Backend)
    assert backend.counts() == Counts(0, 0) and backend.embedding() is None and backend.documents() == []


def test_writes_read_back_as_typed_records(backend):
    put(backend, ALPHA, BETA)
    doc, chunks = ALPHA
    got = backend.document(doc.id)
    assert isinstance(got, Document) and got.text == doc.text and got.source == "notes/alpha.md"
    assert (got.id, got.title, got.kind, got.tags, got.collection, got.path, got.content_hash, got.chunker) == (
        document_id("notes/alpha.md"), "alpha", "markdown", ["animals", "savanna"], "notes", "alpha.md", doc.content_hash, "test")
    meta = backend.document(doc.id, with_text=False)
    assert type(meta) is DocumentInfo and meta.mtime == 10.0 and meta.size == 34
    listed = backend.documents()
    assert all(isinstance(d, DocumentSummary) for d in listed)
    assert [(d.source, d.chunks) for d in listed] == [("notes/alpha.md", 2), ("notes/beta.md", 2)]
    assert [d.source for d in backend.documents(limit=1, offset=1)] == ["notes/beta.md"]
    stored = backend.chunks([c.id for c in chunks] + [12345])
    assert set(stored) == {c.id for c in chunks}, "an unknown id is left out"
    for c in chunks:
        s = stored[c.id]
        assert isinstance(s, StoredChunk) and s.doc_id == doc.id and s.source == doc.source and s.title == "alpha"
        assert got.text[s.start:s.end] == s.text == c.text and (s.index, s.headings, s.tags) == (c.idx, c.headings, doc.tags)
    assert backend.counts() == Counts(2, 4) and backend.chunk_count(doc.id) == 2
    assert backend.embedding() == EmbeddingInfo(MODEL, DIM)
    assert got["text"] == got.text and got.to_dict()["source"] == "notes/alpha.md"  # dict-style reads still work


def test_known_documents_are_what_ingest_compares(backend):
    put(backend, ALPHA, BETA)
    known = backend.known()
    assert set(known) == {"notes/alpha.md", "notes/beta.md"}
    assert known["notes/alpha.md"] == Known("notes/alpha.md", "notes", "alpha.md", 10.0, 34, "s1", ALPHA[0].content_hash, "test")
    assert backend.known_source("notes/beta.md") == known["notes/beta.md"] and backend.known_source("nope.md") is None
    with backend.writer(None, embedding_model=MODEL) as session:
        session.touch(ALPHA[0].id, 20.0, 40, "s2")
    touched = backend.known_source("notes/alpha.md")
    assert (touched.mtime, touched.size, touched.stamp) == (20.0, 40, "s2")
    assert backend.document(ALPHA[0].id).text == ALPHA[0].text, "a touch leaves the content alone"


def test_delete_removes_the_document_its_chunks_and_its_hits(backend):
    put(backend, ALPHA, BETA)
    doc, chunks = ALPHA
    with backend.writer(None, embedding_model=MODEL) as session:
        session.delete(doc.id)
    with pytest.raises(DocumentNotFoundError):
        backend.document(doc.id)
    assert backend.chunks([c.id for c in chunks]) == {} and backend.counts() == Counts(1, 2)
    assert all(cid not in {c.id for c in chunks} for cid, _ in backend.vector_search(axis(0), 10))
    assert backend.lexical_search("zebras", 10) == []
    with pytest.raises(DocumentNotFoundError), backend.writer(None, embedding_model=MODEL) as session:
        session.delete(doc.id)


def test_rewriting_a_document_replaces_it_and_writing_it_again_changes_nothing(backend):
    put(backend, ALPHA, BETA)
    put(backend, ALPHA)
    assert backend.counts() == Counts(2, 4)
    assert sorted(cid for cid, _ in backend.vector_search(axis(0), 10)) == sorted(
        c.id for _, chunks in (ALPHA, BETA) for c in chunks)
    edited = doc_with("alpha.md", "Zebras sleep standing. Lions hunt at night.",
                      [("Zebras sleep standing.", axis(4)), ("Lions hunt at night.", axis(1))], tags=["animals"])
    put(backend, edited)
    old_ids = {c.id for c in ALPHA[1]}
    assert backend.counts() == Counts(2, 4) and backend.chunks(old_ids) == {}
    assert backend.document(ALPHA[0].id).text == edited[0].text and backend.document(ALPHA[0].id).tags == ["animals"]
    assert backend.vector_search(axis(4), 1)[0][0] == edited[1][0].id
    assert not old_ids & {cid for cid, _ in backend.vector_search(axis(0), 10)}
    assert backend.lexical_search("graze", 5) == [] and backend.lexical_search("standing", 5)[0][0] == edited[1][0].id


def test_vector_search_ranks_by_cosine_similarity(backend):
    put(backend, ALPHA, BETA)
    zebras, lions = (c.id for c in ALPHA[1])
    ferns, cacti = (c.id for c in BETA[1])
    query = unit(axis(0) + 0.1 * axis(3))
    ranked = backend.vector_search(query, 4)
    assert [cid for cid, _ in ranked][:2] == [zebras, cacti]
    assert [s for _, s in ranked[:2]] == pytest.approx([float(query @ axis(0)), float(query @ axis(0, tilt=3))], abs=1e-5)
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True) and len(ranked) == 4
    assert len(backend.vector_search(query, 2)) == 2
    assert [cid for cid, _ in backend.vector_search(axis(1), 1)] == [lions]
    assert [cid for cid, _ in backend.vector_search(axis(2), 2)][0] == ferns


def test_lexical_search_finds_words_best_first(backend):
    put(backend, ALPHA, BETA)
    zebras, lions = (c.id for c in ALPHA[1])
    ferns, cacti = (c.id for c in BETA[1])
    assert [cid for cid, _ in backend.lexical_search("zebras", 5)] == [zebras]
    both = backend.lexical_search("shade sun", 5)
    assert {cid for cid, _ in both} == {ferns, cacti} and both[0][1] >= both[1][1]
    assert backend.lexical_search("hunting", 5)[0][0] == lions, "words match by their stem"
    assert backend.lexical_search("quasar", 5) == [] and len(backend.lexical_search("like", 1)) == 1


def test_named_search_ranks_the_notes_a_query_names_by_its_other_words(backend):
    kettle = doc_with("Tea Kettle.md", "The handle gets hot. Water boils fast. Tea tastes of water.",
                      [("The handle gets hot.", axis(3)), ("Water boils fast.", axis(4)), ("Tea tastes of water.", axis(5))])
    garden = doc_with("garden.md", "Water boils away in summer. Kettle plants.", [("Water boils away in summer.", axis(6))])
    report = doc_with("report.pdf", "Budget spent on water.", [("Budget spent on water.", axis(7))], collection="zoo")
    put(backend, kettle, garden, report)
    boils = kettle[1][1].id
    found = backend.named_search("How fast does water boil in the tea kettle?", 5)
    assert found[0][0] == boils and {cid for cid, _ in found} <= {c.id for c in kettle[1]}, "only the named note"
    assert {cid for cid, _ in found} == {kettle[1][1].id, kettle[1][2].id}, "chunks without another word are left out"
    assert backend.named_search("tea-kettle water", 5)[0][0] in {kettle[1][1].id, kettle[1][2].id}
    assert [cid for cid, _ in backend.named_search("report water", 5)] == [report[1][0].id], "a file name's suffix"
    assert backend.named_search("water boils fast", 5) == [], "no note named"
    assert backend.named_search("the tea kettle", 5) == [], "nothing but the name"
    assert backend.named_search("tea kettle water", 5, Filter(source_prefix="zoo/")) == []
    inside = Filter(source_prefix="notes/Tea")  # not a folder: resolved to documents
    assert {cid for cid, _ in backend.named_search("tea kettle water", 5, inside)} == {kettle[1][1].id, kettle[1][2].id}
    assert backend.named_search("tea_kettle water", 5)[0][0] in {kettle[1][1].id, kettle[1][2].id}
    namesakes = [doc_with("index.md", "Water notes.", [("Water notes.", axis(8, tilt=i + 1))], collection=f"c{i}")
                 for i in range(4)]
    put(backend, *namesakes)
    assert backend.named_search("index water", 5) == [], "a name four notes share names none of them"
    put(backend, doc_with("the.md", "Water the lawn.", [("Water the lawn.", axis(9))]),
        doc_with("how-to.txt", "Water weekly.", [("Water weekly.", axis(10))]))
    assert backend.named_search("the water", 5) == [], "a stop word names nothing"
    assert backend.named_search("how to water", 5) == [], "nor do stop words with a file suffix"
    node = doc_with("node.js.md", "Install with npm.", [("Install with npm.", axis(11))])
    put(backend, node)
    assert [cid for cid, _ in backend.named_search("install node.js", 5)] == [node[1][0].id]


def test_filters_restrict_both_searches(backend):
    gamma = doc_with("gamma.md", "Zebras are striped.", [("Zebras are striped.", axis(0, tilt=5))], tags=["animals"],
                     collection="zoo")
    put(backend, ALPHA, BETA, gamma)
    zoo = Filter(source_prefix="zoo/")
    assert [cid for cid, _ in backend.vector_search(axis(0), 10, zoo)] == [gamma[1][0].id]
    assert [cid for cid, _ in backend.lexical_search("zebras", 10, zoo)] == [gamma[1][0].id]
    plants = Filter(tags=("plants",))
    assert {cid for cid, _ in backend.vector_search(axis(0), 10, plants)} == {c.id for c in BETA[1]}
    both = Filter(source_prefix="notes/", tags=("animals", "savanna"))
    assert {cid for cid, _ in backend.lexical_search("zebras lions", 10, both)} == {c.id for c in ALPHA[1]}
    none = Filter(tags=("animals", "plants"))
    assert backend.vector_search(axis(0), 10, none) == [] and backend.lexical_search("zebras", 10, none) == []
    assert len(backend.vector_search(axis(0), 10, Filter())) == 5, "an empty filter lets everything through"


def test_collections_are_created_once_and_can_get_a_folder(backend):
    assert backend.add_collection("notes", "/data/notes") == Collection("notes", "/data/notes")
    backend.add_collection("uploads", None)
    backend.add_collection("notes", None)  # exists: unchanged
    assert backend.collections() == {"notes": Collection("notes", "/data/notes"), "uploads": Collection("uploads", None)}
    assert backend.set_collection_root("uploads", "/data/up") == Collection("uploads", "/data/up")
    assert backend.collections()["uploads"].root == "/data/up"


def test_meta_values_round_trip(backend):
    assert backend.get_meta("chunker") is None
    with backend.writer(None, embedding_model=MODEL) as session:
        session.set_meta("chunker", {"method": "recursive", "max_tokens": 96})
    assert backend.get_meta("chunker") == {"method": "recursive", "max_tokens": 96}


def test_a_batch_lands_whole_or_not_at_all(backend):
    put(backend, ALPHA)
    narrow = doc_with("narrow.md", "Short vectors here.", [("Short vectors here.", np.ones(8, dtype=np.float32))])
    with pytest.raises(EmbeddingMismatchError), backend.writer(None, embedding_model=MODEL) as session:
        session.put([BETA, narrow])
    assert backend.counts() == Counts(1, 2) and backend.known_source("notes/beta.md") is None
    assert backend.lexical_search("ferns", 5) == []
    put(backend, BETA)  # the session after a failed one works
    assert backend.counts() == Counts(2, 4)


def test_one_writer_at_a_time(open_backend):
    first, second = open_backend(), open_backend()
    with first.writer(None, embedding_model=MODEL) as session:
        with pytest.raises(WriteLockTimeoutError):
            with second.writer(0.2, embedding_model=MODEL):
                pass
        session.put([ALPHA])
        assert second.counts() == Counts(1, 2), "readers see each commit without waiting for the writer"
    put(second, BETA, timeout=5)
    assert first.counts() == Counts(2, 4)


def test_what_was_written_is_there_when_opened_again(open_backend):
    backend = open_backend()
    put(backend, ALPHA, BETA)
    backend.close()
    again = open_backend()
    assert again.counts() == Counts(2, 4) and again.embedding() == EmbeddingInfo(MODEL, DIM)
    assert [cid for cid, _ in again.vector_search(axis(1), 1)] == [ALPHA[1][1].id]
    state = again.index_state()
    assert state.vectors == 4 and state.up_to_date
    assert again.check().ok


def test_search_and_ask_run_on_the_backend_with_exact_offsets(backend, tmp_path):
    nb = Notebook(tmp_path / "unused", backend=backend, embedder=EMBED)
    ingestor = Ingestor(nb, ChunkSettings.of("recursive", max_tokens=32, overlap=0))
    text = ("# Savanna\n\nZebras graze on the open plains in large herds.\n\n"
            "## Night\n\nLions hunt at night when the air is cool and the zebras rest.\n")
    doc_id, status = ingestor.ingest_text(text, "savanna.md")
    assert status == "added" and ingestor.ingest_text(text, "savanna.md") == (doc_id, "unchanged")
    assert nb.document(doc_id).source == "uploads/savanna.md" and nb.embedding_model == MODEL
    for mode in ("hybrid", "dense", "lexical"):
        hits = nb.search("when do lions hunt", k=3, mode=mode)
        assert hits and all(isinstance(h, Hit) for h in hits)
        for h in hits:
            assert nb.document(h.doc_id).text[h.start:h.end] == h.text
    assert nb.search("lions", k=1, filters={"source_prefix": "nothing/"}) == []
    answer = nb.ask("When do lions hunt?", min_score=0.0)
    assert answer.covered and answer.citations
    for c in answer.citations:
        assert nb.document(c.doc_id).text[c.start:c.end] == c.text
    deleted = nb.delete(doc_id)
    assert deleted.source == "uploads/savanna.md" and nb.counts() == Counts(0, 0)


def test_folders_ingest_and_prune_through_the_backend(backend, tmp_path):
    nb = Notebook(tmp_path / "unused", backend=backend, embedder=EMBED)
    notes = tmp_path / "field-notes"
    notes.mkdir()
    (notes / "a.md").write_text("# A\n\nHerons wade in shallow water.\n", encoding="utf-8")
    (notes / "b.md").write_text("# B\n\nOtters crack shells on stones.\n", encoding="utf-8")
    ingestor = Ingestor(nb, ChunkSettings.of("recursive", max_tokens=32, overlap=0))
    first = ingestor.ingest_paths([notes])
    assert sorted(first.added) == ["field-notes/a.md", "field-notes/b.md"]
    assert backend.collections()["field-notes"].root == str(notes.resolve())
    (notes / "b.md").unlink()
    again = ingestor.ingest_paths([notes], prune=True)
    assert again.removed == ["field-notes/b.md"] and again.unchanged == 1
    assert [d.source for d in nb.documents()] == ["field-notes/a.md"]
    assert nb.search("otters", k=3, mode="lexical") == []
    assert nb.status()["chunker"] == {"method": "recursive", "max_tokens": 32, "overlap": 0}
