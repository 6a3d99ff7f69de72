"""Source identity: folders are collections, a document is collection/path, a file
keeps its identity, --prune syncs only what it walked, and version-1 data folders
migrate. Real SQLite and FAISS; a small deterministic embedder keeps it quick."""

import os
import re
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from ingest import EmptyDocumentError, Ingestor, IngestError, InvalidSourceError, check_source_name
from ingest.pipeline import Prepared, PendingDocument, IngestReport
from ingest.loaders import load_bytes
from retrieval import Notebook
from retrieval.store import LEGACY_COLLECTION, document_id
from tests.helpers import check_store_consistent


def hashed_embedder(texts):
    """Bag of words hashed into 64 dimensions: deterministic, and similar texts are near."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, hash(word) % 64] += 1.0
        out[i] /= max(np.linalg.norm(out[i]), 1e-6)
    return out


@pytest.fixture()
def nb(tmp_path):
    return Notebook(tmp_path / "data", embedder=hashed_embedder)


def write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def stored(nb):
    return {d["source"]: nb.document(d["id"])["text"] for d in nb.documents()}


def test_same_name_in_two_folders_is_two_documents_even_with_same_size_and_mtime(nb, tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    pa = write(a, "same.md", "alpha note about lighthouses\n")
    pb = write(b, "same.md", "bravo note about windmills..\n")
    assert pa.stat().st_size == pb.stat().st_size
    os.utime(pb, ns=(pa.stat().st_atime_ns, pa.stat().st_mtime_ns))
    Ingestor(nb).ingest_paths([a])
    report = Ingestor(nb).ingest_paths([b])
    assert report.added == ["B/same.md"] and report.unchanged == 0
    assert stored(nb) == {"A/same.md": "alpha note about lighthouses\n", "B/same.md": "bravo note about windmills..\n"}
    assert nb.search("windmills", k=1, mode="lexical")[0].source == "B/same.md"
    check_store_consistent(nb)


def test_prune_of_one_folder_never_touches_another(nb, tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    for i in range(3):
        write(a, f"a{i}.md", f"note {i} of folder A\n")
    write(b, "b.md", "the only note of B\n")
    Ingestor(nb).ingest_paths([a])
    report = Ingestor(nb).ingest_paths([b], prune=True)
    assert report.removed == [] and set(stored(nb)) == {"A/a0.md", "A/a1.md", "A/a2.md", "B/b.md"}
    (a / "a1.md").unlink()
    report = Ingestor(nb).ingest_paths([b], prune=True)
    assert report.removed == []  # A was not walked
    report = Ingestor(nb).ingest_paths([a], prune=True)
    assert report.removed == ["A/a1.md"] and set(stored(nb)) == {"A/a0.md", "A/a2.md", "B/b.md"}
    check_store_consistent(nb)


def test_a_file_keeps_its_identity_whichever_way_it_is_reached(nb, tmp_path):
    a = tmp_path / "A"
    write(a, "sub/deep.md", "deep note about tides\n")
    write(a, "top.md", "top note\n")
    Ingestor(nb).ingest_paths([a / "sub" / "deep.md"])  # directly first: its folder becomes a collection
    assert set(stored(nb)) == {"sub/deep.md"}
    report = Ingestor(nb).ingest_paths([a])
    assert report.added == ["A/top.md"] and report.unchanged == 1 and set(stored(nb)) == {"sub/deep.md", "A/top.md"}
    again = Ingestor(nb).ingest_paths([a / "top.md", a / "sub", a / "sub" / "deep.md"])
    assert again.added == [] and again.unchanged == 2 and len(stored(nb)) == 2
    # a sub-folder of a known folder stays inside that collection, and --prune there is scoped to it
    write(a, "sub/new.md", "new note\n")
    (a / "sub" / "deep.md").unlink()
    report = Ingestor(nb).ingest_paths([a / "sub"], prune=True)
    assert report.added == ["sub/new.md"] and report.removed == ["sub/deep.md"] and "A/top.md" in stored(nb)
    check_store_consistent(nb)


def test_collection_names_clash_free_and_explicit(nb, tmp_path):
    one, two, three = tmp_path / "x" / "notes", tmp_path / "y" / "notes", tmp_path / "z"
    write(one, "n.md", "first notes folder\n")
    write(two, "n.md", "second notes folder\n")
    write(three, "n.md", "third folder\n")
    Ingestor(nb).ingest_paths([one])
    Ingestor(nb).ingest_paths([two])
    Ingestor(nb).ingest_paths([three], collection="work")
    assert set(stored(nb)) == {"notes/n.md", "notes-2/n.md", "work/n.md"}
    assert {c.name: c.root for c in nb.store.collections().values()} == {
        "notes": str(one.resolve()), "notes-2": str(two.resolve()), "work": str(three.resolve())}
    with pytest.raises(IngestError, match="already the collection 'work'"):
        Ingestor(nb).ingest_paths([three], collection="other")
    with pytest.raises(IngestError, match="collection 'notes' already holds"):
        Ingestor(nb).ingest_paths([tmp_path / "x"], collection="notes")
    with pytest.raises(InvalidSourceError, match="collection must be"):
        Ingestor(nb).ingest_paths([three], collection="../up")


@pytest.mark.parametrize("name,problem", [
    ("../../etc/passwd", "'..' segment"), ("/etc/passwd", "absolute path"), ("C:/x.md", "absolute path"),
    ("a\\b.md", "backslash"), ("a\x00b.md", "control character U+0000"), ("a\nb", "control character U+000A"),
    ("a//b.md", "empty or '.' segment"), ("./a.md", "empty or '.' segment"), ("", "must not be empty"),
    ("x" * 1025, "the limit is 1024"),
])
def test_api_source_names_cannot_escape(nb, name, problem):
    with pytest.raises(InvalidSourceError, match=re.escape(problem)):
        Ingestor(nb).ingest_text("# a note\n\nsome text", name)
    assert nb.documents() == []


def test_api_documents_live_in_uploads_or_a_named_collection(nb, tmp_path):
    ing = Ingestor(nb)
    doc_id, status = ing.ingest_text("# Lighting\n\nrim light", "lighting/rim.md")
    assert status == "added" and nb.document(doc_id)["source"] == "uploads/lighting/rim.md"
    assert ing.ingest_text("# Lighting\n\nrim light", "lighting/rim.md") == (doc_id, "unchanged")
    other, _ = ing.ingest_text("# Lighting\n\nkey light", "lighting/rim.md", collection="studio")
    assert other != doc_id and nb.document(other)["source"] == "studio/lighting/rim.md"
    write(tmp_path / "A", "a.md", "file note\n")
    Ingestor(nb).ingest_paths([tmp_path / "A"])
    with pytest.raises(IngestError, match="collection 'A' is the folder"):
        ing.ingest_text("x", "a.md", collection="A")
    # uploads are never pruned by a folder
    assert Ingestor(nb).ingest_paths([tmp_path / "A"], prune=True).removed == []
    assert len(stored(nb)) == 3


def test_empty_notes_are_skipped_the_same_way_by_cli_and_api(nb, tmp_path):
    folder = tmp_path / "E"
    write(folder, "empty.md", "")
    write(folder, "blank.txt", "  \n\t\n")
    write(folder, "front.md", "---\ntitle: Only front matter\ntags: [a]\n---\n\n")
    write(folder, "real.md", "real text\n")
    report = Ingestor(nb).ingest_paths([folder])
    assert report.added == ["E/real.md"] and report.failed == []
    assert sorted(s for s, _ in report.skipped) == ["E/blank.txt", "E/empty.md", "E/front.md"]
    assert all("skipped: empty" in reason for _, reason in report.skipped)
    for text, kind in [("", "markdown"), ("  \n", "text"), ("---\ntitle: x\n---\n", "markdown")]:
        with pytest.raises(EmptyDocumentError, match="skipped: empty"):
            Ingestor(nb).ingest_text(text, "n.md", kind=kind)
    # a stored note emptied later is removed, and the report says so
    (folder / "real.md").write_text("")
    report = Ingestor(nb).ingest_paths([folder])
    assert report.removed == ["E/real.md"] and stored(nb) == {}


def test_same_size_edit_with_restored_mtime_is_seen(nb, tmp_path):
    folder = tmp_path / "S"
    path = write(folder, "n.md", "version one of the note\n")
    old = time.time() - 3600
    os.utime(path, (old, old))
    time.sleep(2.1)  # past the racy window, so the file gets a stamp
    Ingestor(nb).ingest_paths([folder])
    assert nb.store.known_source("S/n.md").stamp is not None
    assert Ingestor(nb).ingest_paths([folder]).unchanged == 1
    path.write_text("version TWO of the note\n")
    os.utime(path, (old, old))  # same size, same mtime: only ctime tells
    report = Ingestor(nb).ingest_paths([folder])
    assert report.updated == ["S/n.md"] and stored(nb) == {"S/n.md": "version TWO of the note\n"}


def _downgrade_to_version_1(db_path):
    db = sqlite3.connect(db_path)
    db.executescript("""
        DROP TABLE links; DROP TABLE aliases_fts; DROP INDEX documents_by_link_name;
        ALTER TABLE documents DROP COLUMN aliases; ALTER TABLE documents DROP COLUMN line_offset;
        ALTER TABLE documents DROP COLUMN meta_hash; ALTER TABLE documents DROP COLUMN link_name;
        DROP INDEX documents_by_path;
        ALTER TABLE documents DROP COLUMN collection;
        ALTER TABLE documents DROP COLUMN path;
        ALTER TABLE documents DROP COLUMN stamp;
        DROP TABLE collections;
        DELETE FROM meta WHERE key='schema';
    """)
    db.close()


def test_version_1_data_folder_migrates_and_its_folder_claims_it(tmp_path):
    notes = tmp_path / "notes"
    for name, text in [("a.md", "apple note\n"), ("b.md", "banana note\n"), ("sub/c.md", "cherry note\n")]:
        write(notes, name, text)
    data = tmp_path / "data"
    nb = Notebook(data, embedder=hashed_embedder)
    ing = Ingestor(nb)
    # what version 1 stored: bare sources relative to the folder, ids derived from them, plus one API text
    with nb.writer() as writer:
        for name in ("a.md", "b.md", "sub/c.md"):
            info = (notes / name).stat()
            loaded = load_bytes((notes / name).read_bytes(), name)
            ing.write(writer, [PendingDocument(LEGACY_COLLECTION, name, Prepared(loaded), info.st_mtime, info.st_size, None, False)],
                       IngestReport())
        ing.write(writer, [PendingDocument(LEGACY_COLLECTION, "pasted.md", Prepared(load_bytes(b"pasted text", "pasted.md")),
                                     None, None, None, False)], IngestReport())
    ids = {d["source"]: d["id"] for d in nb.documents()}
    nb.store.close()
    _downgrade_to_version_1(data / "notes.sqlite")

    nb = Notebook(data, embedder=hashed_embedder)
    assert {d["source"]: d["id"] for d in nb.documents()} == ids
    assert nb.store.get_meta("schema") == 3
    report = Ingestor(nb).ingest_paths([notes], prune=True)
    assert report.added == [] and report.removed == [] and report.unchanged == 3
    assert nb.store.collections()[LEGACY_COLLECTION].root == str(notes.resolve())
    assert Ingestor(nb).ingest_text("pasted text, edited", "pasted.md") == (ids["pasted.md"], "updated")
    (notes / "b.md").unlink()
    write(notes, "d.md", "date note\n")
    report = Ingestor(nb).ingest_paths([notes], prune=True)
    assert report.added == ["d.md"] and report.removed == ["b.md"]
    assert set(stored(nb)) == {"a.md", "sub/c.md", "d.md", "pasted.md"}
    other = tmp_path / "other"
    write(other, "a.md", "another apple\n")
    assert Ingestor(nb).ingest_paths([other]).added == ["other/a.md"]
    assert document_id("a.md") == ids["a.md"]
    check_store_consistent(nb)


def test_check_source_name_normalises_harmlessly():
    assert check_source_name("  notes/café.md ") == "notes/caf\u00e9.md"


def test_load_limits_come_from_the_environment_and_cuts_are_reported(tmp_path):
    """NOTELOOM_<LIMIT> reaches the CLI ingest; what was cut is printed, and the note kept."""
    import json
    import subprocess
    import sys

    from tests.test_ingest_bombs import hostile_pdf

    folder = tmp_path / "pdfs"
    folder.mkdir()
    (folder / "book.pdf").write_bytes(hostile_pdf(pages=3, lines=2))
    env = dict(os.environ, NOTELOOM_MAX_PDF_PAGES="1", PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    run = subprocess.run([sys.executable, "-m", "service.cli", "--data", str(tmp_path / "data"), "ingest", str(folder), "--json"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["added"] == ["pdfs/book.pdf"]
    assert any("1 of 3 pages" in n["notice"] and "max_pdf_pages" in n["notice"] for n in report["notices"]), report
    bad = subprocess.run([sys.executable, "-m", "service.cli", "--data", str(tmp_path / "data"), "ingest", str(folder)],
                         capture_output=True, text=True, env=dict(env, NOTELOOM_MAX_PDF_PAGES="none"), timeout=300)
    assert bad.returncode == 2 and "NOTELOOM_MAX_PDF_PAGES must be a positive integer, got 'none'" in bad.stderr
