import os
import shutil
import time

import pytest

from ingest import ChunkSettings, CorruptFileError, Ingestor, UnsupportedFileError, load_bytes
from retrieval import DocumentNotFoundError, EmbeddingMismatchError, Notebook, RetrievalError
from tests.helpers import check_store_consistent, make_pdf


@pytest.fixture()
def notes_copy(tmp_path, notes_dir):
    target = tmp_path / "notes"
    shutil.copytree(notes_dir, target)
    return target


@pytest.fixture()
def notebook(tmp_path):
    return Notebook(tmp_path / "data")


def test_ingest_then_reingest_is_a_no_op(notebook, notes_copy):
    first = Ingestor(notebook).ingest_paths([notes_copy])
    assert len(first.added) == 12 and not first.failed and first.chunks_embedded > 40
    counts = check_store_consistent(notebook)
    second = Ingestor(notebook).ingest_paths([notes_copy])
    assert (second.added, second.updated, second.chunks_embedded, second.unchanged) == ([], [], 0, 12)
    assert check_store_consistent(notebook) == counts
    # touched but identical content: hashed, not re-embedded
    os.utime(notes_copy / "chunking-recursive.md", (time.time() + 5, time.time() + 5))
    third = Ingestor(notebook).ingest_paths([notes_copy])
    assert third.chunks_embedded == 0 and third.unchanged == 12


def test_changed_file_reembeds_only_its_chunks_and_prune_removes(notebook, notes_copy):
    Ingestor(notebook).ingest_paths([notes_copy])
    path = notes_copy / "chunking-recursive.md"
    path.write_text(path.read_text() + "\n\n## Added later\n\nA brand new paragraph about zebra-striped separators.\n")
    report = Ingestor(notebook).ingest_paths([notes_copy])
    doc = notebook.store.document_by_source("notes/chunking-recursive.md")
    assert report.updated == ["notes/chunking-recursive.md"] and report.chunks_embedded == notebook.store.documents_chunk_count(doc["id"])
    assert notebook.search("zebra-striped separators", k=1)[0].source == "notes/chunking-recursive.md"
    (notes_copy / "sd-lora-datasets.md").unlink()
    kept = Ingestor(notebook).ingest_paths([notes_copy])
    assert kept.removed == [] and notebook.store.document_by_source("notes/sd-lora-datasets.md") is not None
    pruned = Ingestor(notebook).ingest_paths([notes_copy], prune=True)
    assert pruned.removed == ["notes/sd-lora-datasets.md"] and notebook.store.document_by_source("notes/sd-lora-datasets.md") is None
    check_store_consistent(notebook)


def test_changing_chunk_settings_rechunks(notebook, notes_copy):
    Ingestor(notebook).ingest_paths([notes_copy])
    before = notebook.store.counts()["chunks"]
    report = Ingestor(notebook, ChunkSettings.of("recursive", max_tokens=96)).ingest_paths([notes_copy])
    assert len(report.updated) == 12 and notebook.store.counts()["chunks"] > before
    assert notebook.status()["chunker"] == {"method": "recursive", "max_tokens": 96}
    check_store_consistent(notebook)


def test_chunk_ids_derive_from_document_and_offsets(tmp_path, notes_copy):
    a, b = Notebook(tmp_path / "a"), Notebook(tmp_path / "b")
    Ingestor(a).ingest_paths([notes_copy])
    Ingestor(b).ingest_paths([notes_copy])
    ids = lambda nb: sorted(r[0] for r in nb.store.db.execute("SELECT id FROM chunks"))  # noqa: E731
    assert ids(a) == ids(b)


def test_front_matter_tags_and_filters(notebook, notes_copy):
    Ingestor(notebook).ingest_paths([notes_copy])
    doc = notebook.store.document_by_source("notes/sd-prompting-basics.md")
    assert doc["tags"] and not doc["text"].startswith("---")
    tag = doc["tags"][0]
    hits = notebook.search("negative prompt", k=5, filters={"tags": [tag]})
    assert hits and all(tag in notebook.store.document(h.doc_id)["tags"] for h in hits)
    hits = notebook.search("learning rate", k=5, filters={"source_prefix": "notes/sd-lora"})
    assert hits and all(h.source.startswith("notes/sd-lora") for h in hits)
    with pytest.raises(RetrievalError, match="unknown filter 'colour'"):
        notebook.search("x", filters={"colour": "red"})


def test_every_hit_slices_the_stored_text(notebook, notes_copy):
    Ingestor(notebook).ingest_paths([notes_copy])
    for mode in ("dense", "lexical", "hybrid"):
        for h in notebook.search("how does reciprocal rank fusion combine rankings", k=5, mode=mode):
            assert notebook.document(h.doc_id)["text"][h.start : h.end] == h.text


def test_ask_cites_exact_sentences_or_declines(notebook, notes_copy):
    Ingestor(notebook).ingest_paths([notes_copy])
    answer = notebook.ask("Why can't I delete vectors from an HNSW index?")
    assert answer.covered and 1 <= len(answer.citations) <= 3
    for c in answer.citations:
        assert notebook.document(c.doc_id)["text"][c.start : c.end] == c.text
        assert c.text in answer.answer
    assert any("HNSW" in c.text for c in answer.citations)
    off_topic = notebook.ask("What is the capital of Peru?")
    assert not off_topic.covered and off_topic.citations == []


@pytest.mark.parametrize("question,k,needle", [("", 5, "must not be empty"), ("   ", 5, "must not be empty"),
                                               ("ok?", 0, "k must be an integer from 1 to 100, got 0"),
                                               ("ok?", 101, "got 101"), (42, 5, "must be a string")])
def test_bad_questions_name_the_problem(notebook, question, k, needle):
    with pytest.raises(RetrievalError) as info:
        notebook.ask(question, k=k)
    assert needle in str(info.value)


def test_loaders_html_pdf_and_bad_files():
    html_doc = load_bytes(b"<html><head><title>CFG</title><style>p{}</style></head><body><h1>Guidance</h1>"
                          b"<p>CFG scale 7 is a good default.</p><ul><li>Euler a</li><li>DDIM</li></ul></body></html>", "x.html")
    assert html_doc.title == "CFG" and "# Guidance" in html_doc.text and "- Euler a" in html_doc.text and "p{}" not in html_doc.text
    pdf = load_bytes(make_pdf(["LoRA rank 8 is plenty for a face.", "Use rank 32 for a style."]), "notes.pdf")
    assert "LoRA rank 8 is plenty for a face." in pdf.text and pdf.kind == "pdf"
    with pytest.raises(CorruptFileError, match="broken PDF|no extractable text"):
        load_bytes(b"%PDF-1.4\n1 0 obj garbage", "broken.pdf")
    with pytest.raises(CorruptFileError, match=r"bad\.md: not valid UTF-8 \(byte 0xff at offset 2\)"):
        load_bytes(b"ok\xff", "bad.md")
    with pytest.raises(UnsupportedFileError, match="binary"):
        load_bytes(b"\x00\x01\x02PNG", "image.txt")
    with pytest.raises(UnsupportedFileError, match="unsupported file type '.docx'"):
        load_bytes(b"x", "report.docx")


def test_pdf_and_html_ingest_with_citations(notebook, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "lora.pdf").write_bytes(make_pdf(["LoRA rank 8 is plenty for a face.", "Use rank 32 for a painting style."]))
    (folder / "bad.md").write_bytes(b"caf\xe9")
    report = Ingestor(notebook).ingest_paths([folder, tmp_path / "missing"])
    assert report.added == ["mixed/lora.pdf"]
    assert {s for s, _ in report.failed} == {"mixed/bad.md", str(tmp_path / "missing")}
    hit = notebook.search("which LoRA rank for a face", k=1)[0]
    assert hit.source == "mixed/lora.pdf" and "rank 8" in notebook.document(hit.doc_id)["text"][hit.start : hit.end]


def test_delete_and_unknown_ids(notebook, notes_copy):
    Ingestor(notebook).ingest_paths([notes_copy])
    doc = notebook.store.document_by_source("notes/chunking-recursive.md")
    notebook.delete(doc["id"])
    with pytest.raises(DocumentNotFoundError):
        notebook.document(doc["id"])
    with pytest.raises(DocumentNotFoundError):
        notebook.delete(doc["id"])
    assert all(h.source != "notes/chunking-recursive.md" for h in notebook.search("separator hierarchy", k=10))
    check_store_consistent(notebook)


def test_a_different_embedding_model_is_refused(tmp_path, notes_copy):
    nb = Notebook(tmp_path / "data")
    Ingestor(nb).ingest_paths([notes_copy / "chunking-recursive.md"])
    with pytest.raises(EmbeddingMismatchError, match="built with embedding model 'all-MiniLM-L6-v2'"):
        Notebook(tmp_path / "data", embedding_model="some/other-model")


def test_corrupt_or_truncated_index_is_rebuilt_with_a_notice(tmp_path, notes_copy):
    nb = Notebook(tmp_path / "data")
    Ingestor(nb).ingest_paths([notes_copy])
    expected = [h.chunk_id for h in nb.search("textual inversion learning rate", k=5, mode="dense")]
    manifest = nb.store.get_meta("index")
    path = tmp_path / "data" / manifest["file"]
    for damage in ("flip", "truncate"):
        data = bytearray(path.read_bytes())
        if damage == "flip":
            data[len(data) // 2] ^= 0xFF
        else:
            data = data[: len(data) // 3]
        path.write_bytes(bytes(data))
        fresh = Notebook(tmp_path / "data")
        assert [h.chunk_id for h in fresh.search("textual inversion learning rate", k=5, mode="dense")] == expected
        assert any("does not match its checksum" in n for n in fresh.notices)
        check_store_consistent(fresh)
        manifest = fresh.store.get_meta("index")
        path = tmp_path / "data" / manifest["file"]  # rebuilt and persisted again
