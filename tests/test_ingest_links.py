"""Links, FIFOs, devices and /proc: nothing outside the folder is read unless asked,
and special files are never read (or waited on). Generated link farms."""

import os
import threading

import pytest

from ingest import Ingestor, UnsupportedFileError
from ingest.sources import read_note
from retrieval import Notebook
from tests.helpers import check_store_consistent
from tests.test_ingest_identity import hashed_embedder, stored, write

SECRET = "the launch code is 0000 and nobody must index it"


@pytest.fixture()
def farm(tmp_path):
    """A folder with one real note and links of every hostile kind."""
    outside = write(tmp_path / "private", "secret.md", SECRET + "\n")
    write(tmp_path / "private", "deeper/also.md", SECRET + " too\n")
    notes = tmp_path / "notes"
    write(notes, "real.md", "a real note about lanterns\n")
    os.symlink("/etc/passwd", notes / "passwd.md")
    os.symlink(outside, notes / "secret-link.md")
    os.symlink("/proc/self/status", notes / "status.txt")
    os.symlink(tmp_path / "private", notes / "private-dir")
    os.symlink(notes, notes / "loop")  # a folder link back into the folder: entered once
    os.symlink(notes / "real.md", notes / "alias.md")  # inside: the same document as real.md
    os.mkfifo(notes / "pipe.md")
    os.symlink("/dev/zero", notes / "zero.txt")
    return notes


def ingest_within(nb, paths, seconds=60, **kwargs):
    """Ingest on a thread with a deadline, so a read that blocks fails the test instead of hanging it."""
    result = {}

    def run():
        try:
            result["report"] = Ingestor(nb, **kwargs).ingest_paths(paths)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test's thread
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "ingest blocked (a FIFO or device was read?)"
    if "error" in result:
        raise result["error"]
    return result["report"]


def test_links_out_of_the_folder_and_special_files_are_skipped_and_said(tmp_path, farm):
    nb = Notebook(tmp_path / "data", embedder=hashed_embedder)
    report = ingest_within(nb, [farm])
    assert stored(nb) == {"notes/real.md": "a real note about lanterns\n"}
    reasons = {os.path.basename(p): r for p, r in report.skipped}
    assert "outside the folder" in reasons["secret-link.md"] and "outside the folder" in reasons["private-dir"]
    assert "kernel pseudo-file" in reasons["status.txt"] and "kernel pseudo-file" in reasons["zero.txt"]
    assert "--follow-links" in reasons["passwd.md"]
    failed = dict(report.failed)
    assert "not a regular file (a FIFO)" in failed["notes/pipe.md"]
    for query in ("launch code", "root", "VmRSS"):
        assert nb.search(query, k=5, mode="lexical") == []
    check_store_consistent(nb)


def test_follow_links_reads_outside_files_but_never_special_ones(tmp_path, farm):
    nb = Notebook(tmp_path / "data", embedder=hashed_embedder)
    report = ingest_within(nb, [farm], follow_links=True)
    docs = stored(nb)
    assert docs["notes/secret-link.md"] == SECRET + "\n" and docs["notes/private-dir/secret.md"] == SECRET + "\n"
    assert "notes/status.txt" not in docs and "notes/zero.txt" not in docs and "notes/pipe.md" not in docs
    assert "notes/alias.md" not in docs and "notes/real.md" in docs
    assert not any("loop" in s for s in docs)
    assert any("kernel pseudo-file" in r for _, r in report.skipped)


def test_a_link_named_directly_is_confined_to_its_folder(tmp_path, farm):
    nb = Notebook(tmp_path / "data", embedder=hashed_embedder)
    report = ingest_within(nb, [farm / "secret-link.md", farm / "pipe.md", farm / "alias.md"])
    assert list(stored(nb)) == ["notes/real.md"]  # alias.md is real.md
    assert any("outside its folder" in r for _, r in report.skipped)
    assert any("FIFO" in e for _, e in report.failed)


def test_read_note_checks_what_it_opened(tmp_path):
    with pytest.raises(UnsupportedFileError, match="kernel pseudo-file"):
        read_note("/proc/self/status", 1000)
    os.mkfifo(tmp_path / "fifo.md")
    with pytest.raises(UnsupportedFileError, match="FIFO"):
        read_note(tmp_path / "fifo.md", 1000)
    big = write(tmp_path, "big.md", "x" * 2000)
    with pytest.raises(Exception, match="over the 1000-byte limit"):
        read_note(big, 1000)
    data, info = read_note(write(tmp_path, "ok.md", "fine"), 1000)
    assert data == b"fine" and info.st_size == 4
