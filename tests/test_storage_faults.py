"""Storage faults (issue 10, item 5): damaged, truncated, garbage, empty or deleted
databases are refused with one line that says what to do; `noteloom repair`
recovers what can be read; a full disk never ends in a traceback, never tells a
client "failed" for a committed document, and never blocks a read. Real SQLite,
FAISS and embedder; the damage is generated, the disk filled on a small tmpfs
(when mounting is permitted) and ENOSPC injected at the index's one write."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ingest import Ingestor
from ingest.repair import repair
from retrieval import Notebook
from retrieval import integrity, vectors
from retrieval.errors import StorageFullError, StoreDamagedError
from tests.helpers import check_store_consistent

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ["faiss index", "lora rank", "negative prompt", "chunk overlap", "sentence split", "bm25 hybrid", "dreambooth",
           "scheduler euler", "cfg guidance", "evaluation recall", "textual inversion", "semantic chunking",
           "recursive separators", "diffusers pipeline", "embedding model"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, notes_dir):
    """A data folder holding the sample notes, ingested from a folder that stays on disk."""
    base = tmp_path_factory.mktemp("faults")
    notes = base / "notes"
    shutil.copytree(notes_dir, notes)
    nb = Notebook(base / "data")
    Ingestor(nb).ingest_paths([notes])
    counts = check_store_consistent(nb)
    nb.store.close()
    return base / "data", notes, counts


@pytest.fixture()
def data(built, tmp_path):
    target = tmp_path / "data"
    shutil.copytree(built[0], target)
    return target


def flip(folder: Path) -> None:
    path = folder / "notes.sqlite"
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 4096] = bytes(b ^ 0xFF for b in raw[middle : middle + 4096])
    path.write_bytes(raw)


def truncate(folder: Path, share: float = 0.33) -> None:
    path = folder / "notes.sqlite"
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * share)])


DAMAGE = {
    "flipped": (flip, "is damaged"),
    "truncated": (truncate, "truncated"),
    "garbage": (lambda f: (f / "notes.sqlite").write_bytes(os.urandom(200_000)), "not an SQLite database"),
    "zero bytes": (lambda f: (f / "notes.sqlite").write_bytes(b""), "is empty (0 bytes) but index-"),
    "deleted": (lambda f: (f / "notes.sqlite").unlink(), "is missing but index-"),
}


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_WAIT_POLICY="PASSIVE")
    return subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def one_line_failure(run: subprocess.CompletedProcess, *expected: str) -> str:
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("noteloom:")]
    assert len(lines) == 1, run.stderr
    for text in expected:
        assert text in lines[0]
    return lines[0]


# --- refused at open -----------------------------------------------------------------


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damage_is_refused_at_open_with_what_to_do(data, kind):
    damage, reason = DAMAGE[kind]
    damage(data)
    with pytest.raises(StoreDamagedError) as caught:
        Notebook(data)
    message = str(caught.value)
    assert reason in message and f"noteloom repair --data {data}" in message and "\n" not in message


@pytest.mark.parametrize("kind", ["flipped", "truncated", "deleted"])
def test_cli_says_it_in_one_line_and_exits_1(data, kind):
    DAMAGE[kind][0](data)
    one_line_failure(cli("--data", str(data), "status"), f"data folder {data}", "noteloom repair")
    one_line_failure(cli("--data", str(data), "search", "faiss index"), "noteloom repair")
    one_line_failure(cli("--data", str(data), "serve", "--port", "0"), "noteloom repair")


def test_an_empty_file_without_an_earlier_index_is_a_new_store(tmp_path):
    (tmp_path / "notes.sqlite").write_bytes(b"")
    assert Notebook(tmp_path).status()["documents"] == 0


def test_server_startup_fails_with_the_one_line_error(data):
    from litestar.testing import TestClient

    from service.app import ServiceConfig, create_app

    flip(data)
    with pytest.raises(BaseException) as caught:  # the test client wraps it in an exception group
        with TestClient(create_app(ServiceConfig(data_dir=str(data)), warm=False)):
            pass
    found = caught.value
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    assert isinstance(found, StoreDamagedError) and "noteloom repair" in str(found)


def test_damage_met_by_searches_answers_503_never_500(data, monkeypatch):
    """A store too large for the check at open: damage is found by the reads that reach it."""
    from litestar.testing import TestClient

    from service.app import ServiceConfig, create_app

    monkeypatch.setattr(integrity, "QUICK_CHECK_MAX_BYTES", 0)
    statuses = []
    with TestClient(create_app(ServiceConfig(data_dir=str(data)))) as client:
        flip(data)  # under the running server
        for query in QUERIES * 2:
            response = client.post("/search", json={"query": query, "k": 10})
            statuses.append(response.status_code)
            if response.status_code == 503:
                assert response.json()["error"] == "StoreDamagedError" and "noteloom repair" in response.json()["detail"]
    assert 500 not in statuses and set(statuses) <= {200, 503}
    assert 503 in statuses, "the flipped page should be met by some search"


# --- the full check ------------------------------------------------------------------


def test_status_check_finds_rows_that_disagree(data):
    assert cli("--data", str(data), "status", "--check").stdout.count("check: ok") == 1
    db = sqlite3.connect(data / "notes.sqlite")
    with db:
        db.execute("UPDATE chunks SET start = start + 1 WHERE id = (SELECT MIN(id) FROM chunks)")
        db.execute("UPDATE documents SET text = text || ' rot' WHERE id = (SELECT MIN(id) FROM documents)")
    db.close()
    report = Notebook(data).check()
    assert not report.ok
    assert any("do not slice" in p for p in report.problems) and any("content hash" in p for p in report.problems)
    run = cli("--data", str(data), "status", "--check")
    assert run.returncode == 1 and "Traceback" not in run.stderr and "noteloom repair" in run.stderr


# --- repair --------------------------------------------------------------------------


def test_repair_after_flipped_bytes_recovers_every_note_and_keeps_the_damaged_file(data, built):
    flip(data)
    damaged = (data / "notes.sqlite").read_bytes()
    report = repair(data)
    assert report.recovered + report.reread == 12 and not report.lost
    kept = Path(report.kept_in)
    assert (kept / "notes.sqlite").read_bytes() == damaged and list(kept.glob("index-*.faiss"))
    nb = Notebook(data)
    assert check_store_consistent(nb) == built[2]
    assert nb.search("FAISS index types", k=1)[0].source.endswith("rag-embeddings-faiss.md")


def test_repair_of_a_truncated_store_rereads_lost_text_from_the_files(data, built):
    truncate(data, 0.33)
    run = cli("--data", str(data), "repair")
    assert run.returncode == 0, run.stderr
    assert "re-read from files" in run.stdout and "0 lost" in run.stdout
    nb = Notebook(data)
    assert check_store_consistent(nb) == built[2]
    assert [d["source"] for d in nb.documents()] == [d["source"] for d in Notebook(built[0]).documents()]


def test_repair_takes_unreadable_text_from_its_file_and_names_what_is_lost(data, built):
    notes = built[1]
    db = sqlite3.connect(data / "notes.sqlite")
    rows = db.execute("SELECT source, path FROM documents ORDER BY source LIMIT 2").fetchall()
    with db:
        db.execute("UPDATE documents SET text = CAST(X'C328FFFE' AS TEXT) WHERE source = ?", (rows[0][0],))  # not UTF-8
        db.execute("UPDATE documents SET text = 'bit rot' WHERE source = ?", (rows[1][0],))
    db.close()
    gone = notes.parent / "gone.bak"
    shutil.move(notes / rows[1][1], gone)
    try:
        report = repair(data)
    finally:
        shutil.move(gone, notes / rows[1][1])
    assert (report.recovered, report.reread, report.lost) == (10, 1, [rows[1][0]])
    nb = Notebook(data)
    assert check_store_consistent(nb)["documents"] == 11
    assert nb.store.document_by_source(rows[0][0])["text"] == Notebook(built[0]).store.document_by_source(rows[0][0])["text"]


def test_repair_of_a_healthy_store_changes_nothing(data):
    before = (data / "notes.sqlite").read_bytes()
    assert repair(data).nothing_to_do
    assert (data / "notes.sqlite").read_bytes() == before and not list(data.glob("damaged-*"))


def test_repair_of_a_deleted_store_starts_afresh_and_keeps_the_index(data):
    (data / "notes.sqlite").unlink()
    report = repair(data)
    assert list(Path(report.kept_in).glob("index-*.faiss")) and not list(data.glob("index-*.faiss"))
    assert Notebook(data).status()["documents"] == 0


# --- a full disk ---------------------------------------------------------------------


def test_index_write_failing_after_the_commit_is_a_notice_not_a_failure(data, monkeypatch):
    from litestar.testing import TestClient

    from service.app import ServiceConfig, create_app

    def full(path: Path, payload: bytes) -> None:
        with open(path, "wb") as fh:
            fh.write(payload[: len(payload) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    with TestClient(create_app(ServiceConfig(data_dir=str(data)))) as client:
        monkeypatch.setattr(vectors, "write_durably", full)
        response = client.post("/documents", json={"text": "# Zebra\n\nZebra-striped storage notes.", "source": "zebra.md"})
        assert response.status_code in (200, 201), response.text
        assert client.get(f"/documents/{response.json()['id']}").status_code == 200
        assert client.post("/search", json={"query": "zebra-striped", "k": 1}).json()["hits"][0]["source"].endswith("zebra.md")
        assert any("index not saved" in n for n in client.app.state.notebook.notices)
    assert not list(data.glob("*.tmp"))
    monkeypatch.undo()
    nb = Notebook(data)  # the index is rebuilt from SQLite
    assert check_store_consistent(nb)["documents"] == 13


@pytest.fixture()
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs is not permitted here; the injected-ENOSPC test covers the commit path")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)  # lazy: a closed server may still hold a file


def fill(disk: Path, leave: int) -> None:
    """Fill the disk, then free ``leave`` bytes."""
    path = disk / "filler"
    with open(path, "ab", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    os.truncate(path, max(0, path.stat().st_size - leave))


def test_a_full_disk_ends_in_one_line_and_reads_still_work(small_disk, built, tmp_path):
    data = small_disk / "data"
    shutil.copytree(built[0], data)
    for index in data.glob("index-*.faiss"):
        index.unlink()  # a read must rebuild the index, and cannot save it
    fill(small_disk, leave=96 * 1024)
    run = cli("--data", str(data), "search", "faiss index", "-k", "1")
    assert run.returncode == 0 and "rag-embeddings-faiss.md" in run.stdout, run.stderr
    assert "Traceback" not in run.stderr and "index not saved" in run.stderr
    note = tmp_path / "zebra.md"
    note.write_text("# Zebra\n\n" + "Zebra-striped storage notes. " * 400)
    one_line_failure(cli("--data", str(data), "ingest", str(note)), "no space left on the disk")
    fill(small_disk, leave=0)
    one_line_failure(cli("--data", str(data), "search", "faiss index"), "no space left on the disk")
    assert not list(data.glob("*.tmp"))
    (small_disk / "filler").unlink()
    assert check_store_consistent(Notebook(data)) == built[2]


def test_a_full_disk_answers_507_over_http(small_disk, built):
    from litestar.testing import TestClient

    from service.app import ServiceConfig, create_app

    data = small_disk / "data"
    shutil.copytree(built[0], data)
    with TestClient(create_app(ServiceConfig(data_dir=str(data)))) as client:
        fill(small_disk, leave=0)
        response = client.post("/documents", json={"text": "# Zebra\n\n" + "Zebra notes. " * 2000, "source": "zebra.md"})
        assert response.status_code == 507 and response.json()["error"] == "StorageFullError", response.text
        assert client.post("/search", json={"query": "faiss index", "k": 1}).status_code == 200
    (small_disk / "filler").unlink()
    assert check_store_consistent(Notebook(data)) == built[2]


def test_storage_errors_are_one_line_classes():
    assert issubclass(StoreDamagedError, RuntimeError) and issubclass(StorageFullError, RuntimeError)
    full = integrity.translate(OSError(errno.ENOSPC, "No space left on device"), Path("/d"))
    assert isinstance(full, StorageFullError) and "\n" not in str(full)
