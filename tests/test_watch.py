"""Watch mode with real file operations in a temp folder and a real watcher
process (`noteloom watch`), asserting what search returns after each change
(bounded waits). The hashing embedder keeps the process free of model loading."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ingest.watch import ADDED, DELETED, MODIFIED, Batch, Ignored, WatchOptions, plan
from tests.helpers import BASE_ENV, ROOT, check_store_consistent

WAIT_SECONDS = 20


def start_watcher(data: Path, folder: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "service.cli", "--data", str(data), "watch", str(folder)], cwd=ROOT,
                            env={**BASE_ENV, "NOTELOOM_EMBEDDING_MODEL": "hashing", "NOTELOOM_WATCH_DEBOUNCE_MS": "200", **env},
                            stderr=subprocess.PIPE, text=True)


def kill(proc: subprocess.Popen) -> str:
    proc.kill()
    proc.wait(timeout=20)
    return proc.stderr.read()


class Reader:
    """A second process's view of the data folder: what search and the document list return."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.nb = None

    def open(self):
        if self.nb is None:
            from retrieval import Notebook

            from retrieval.errors import StoreDamagedError

            if not (self.data / "notes.sqlite").exists():
                return None
            try:
                self.nb = Notebook(self.data)
            except StoreDamagedError:  # opened while the watcher was still creating its tables
                return None
        return self.nb

    def found(self, word: str) -> set[str]:
        nb = self.open()
        return set() if nb is None else {h.source for h in nb.search(word, k=20, mode="lexical")}

    def sources(self) -> set[str]:
        nb = self.open()
        return set() if nb is None else {d.source for d in nb.documents()}

    def until(self, check, what: str, proc: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if check():
                return
            if proc is not None and proc.poll() is not None:
                pytest.fail(f"the watcher exited ({proc.returncode}) before {what}: {proc.stderr.read()}")
            time.sleep(0.05)
        pytest.fail(f"not within {WAIT_SECONDS}s: {what}; stored: {sorted(self.sources())}")


@pytest.fixture()
def vault(tmp_path):
    folder = tmp_path / "vault"
    folder.mkdir()
    (folder / "alpha.md").write_text("# Alpha\n\nThe quokka lives on an island.\n", encoding="utf-8")
    reader = Reader(tmp_path / "data")
    yield folder, reader
    if reader.nb is not None:
        reader.nb.close()


def atomic_write(path: Path, text: str) -> None:
    """How many editors save: a temp file beside the note, then a rename over it."""
    temp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


def test_edits_saves_renames_and_deletes_show_in_search(vault, tmp_path):
    folder, reader = vault
    proc = start_watcher(tmp_path / "data", folder)
    try:
        reader.until(lambda: reader.found("quokka") == {"vault/alpha.md"}, "the catch-up scan", proc)

        (folder / "beta.md").write_text("A narwhal note.\n", encoding="utf-8")
        reader.until(lambda: reader.found("narwhal") == {"vault/beta.md"}, "a new note", proc)

        (folder / "beta.md").write_text("A pangolin note now.\n", encoding="utf-8")  # edited in place
        reader.until(lambda: reader.found("pangolin") == {"vault/beta.md"} and not reader.found("narwhal"), "an edit", proc)

        atomic_write(folder / "alpha.md", "# Alpha\n\nThe axolotl replaced the quokka's island.\n")
        reader.until(lambda: reader.found("axolotl") == {"vault/alpha.md"}, "a save by rename", proc)

        # Vim: a swap file while editing, a backup, a probe file; none of them is a note
        (folder / ".beta.md.swp").write_text("swap okapi", encoding="utf-8")
        (folder / "beta.md~").write_text("backup okapi", encoding="utf-8")
        (folder / "4913").write_text("", encoding="utf-8")
        atomic_write(folder / "beta.md", "A pangolin met an okapi.\n")
        reader.until(lambda: reader.found("okapi") == {"vault/beta.md"}, "a Vim-style save", proc)

        (folder / "beta.md").rename(folder / "gamma.md")
        reader.until(lambda: reader.found("okapi") == {"vault/gamma.md"} and "vault/beta.md" not in reader.sources(),
                     "a rename", proc)

        (folder / "gamma.md").unlink()
        reader.until(lambda: not reader.found("okapi"), "a delete", proc)
        assert reader.sources() == {"vault/alpha.md"}
        check_store_consistent(reader.nb)
    finally:
        kill(proc)


def test_bursts_and_whole_folders_moving_in_and_out(vault, tmp_path):
    folder, reader = vault
    proc = start_watcher(tmp_path / "data", folder)
    try:
        reader.until(lambda: reader.found("quokka"), "the catch-up scan", proc)
        for i in range(40):  # one note rewritten many times, quickly
            (folder / "burst.md").write_text(f"Draft number v{i} of the wombat.\n", encoding="utf-8")
        for i in range(25):  # many new notes at once
            (folder / f"many-{i:02d}.md").write_text(f"Note {i} about the capybara.\n", encoding="utf-8")
        reader.until(lambda: reader.found("v39") == {"vault/burst.md"} and len(reader.found("capybara")) == 20,
                     "a burst of writes", proc)  # k=20 caps the hits; the list shows all
        reader.until(lambda: {f"vault/many-{i:02d}.md" for i in range(25)} <= reader.sources(), "25 new notes", proc)
        assert not reader.found("v38")

        outside = tmp_path / "elsewhere"
        (outside / "deep").mkdir(parents=True)
        (outside / "deep" / "one.md").write_text("The tapir sleeps.\n", encoding="utf-8")
        (outside / "two.txt").write_text("The tapir swims.\n", encoding="utf-8")
        shutil.move(str(outside), str(folder / "moved"))
        reader.until(lambda: reader.found("tapir") == {"vault/moved/deep/one.md", "vault/moved/two.txt"},
                     "a folder moved in", proc)

        shutil.move(str(folder / "moved"), str(tmp_path / "gone-again"))
        reader.until(lambda: not reader.found("tapir"), "a folder moved out", proc)

        (folder / "fresh").mkdir()  # files written at once into a new folder, before any watch is on it
        (folder / "fresh" / "a.md").write_text("A fresh ibex.\n", encoding="utf-8")
        (folder / "fresh" / "b.md").write_text("Another fresh ibex.\n", encoding="utf-8")
        reader.until(lambda: reader.found("ibex") == {"vault/fresh/a.md", "vault/fresh/b.md"}, "a new folder's notes", proc)
        check_store_consistent(reader.nb)
    finally:
        kill(proc)


def test_ignored_paths_never_reach_the_store(vault, tmp_path):
    folder, reader = vault
    for hidden in (".obsidian", ".trash", "drafts", "sub/drafts"):
        (folder / hidden).mkdir(parents=True)
    proc = start_watcher(tmp_path / "data", folder, NOTELOOM_WATCH_IGNORE="drafts:*.private.md")
    try:
        reader.until(lambda: reader.found("quokka"), "the catch-up scan", proc)
        (folder / ".obsidian" / "workspace.md").write_text("The gecko config.\n", encoding="utf-8")
        (folder / ".trash" / "old.md").write_text("The gecko in the bin.\n", encoding="utf-8")
        (folder / "drafts" / "d.md").write_text("The gecko draft.\n", encoding="utf-8")
        (folder / "sub" / "drafts" / "d.md").write_text("The gecko nested draft.\n", encoding="utf-8")
        (folder / "diary.private.md").write_text("The gecko secret.\n", encoding="utf-8")
        (folder / "kept.md").write_text("The gecko kept.\n", encoding="utf-8")
        reader.until(lambda: reader.found("gecko") == {"vault/kept.md"}, "the note that is not ignored", proc)
        time.sleep(1.0)  # give the ignored events their chance to (wrongly) land
        assert reader.found("gecko") == {"vault/kept.md"}
        (folder / "kept.md").unlink()  # the batch walks the whole folder, ignored paths and all
        reader.until(lambda: not reader.found("gecko"), "the delete", proc)
        time.sleep(0.5)
        assert reader.sources() == {"vault/alpha.md"}
    finally:
        kill(proc)


def test_a_killed_watcher_catches_up_on_the_next_start(vault, tmp_path):
    folder, reader = vault
    (folder / "edit.md").write_text("Before: the lemur.\n", encoding="utf-8")
    (folder / "drop.md").write_text("The marmot.\n", encoding="utf-8")
    proc = start_watcher(tmp_path / "data", folder)
    reader.until(lambda: reader.found("lemur") and reader.found("marmot"), "the first scan", proc)
    kill(proc)  # SIGKILL: no chance to tidy up
    (folder / "edit.md").write_text("After: the mongoose.\n", encoding="utf-8")
    (folder / "drop.md").unlink()
    (folder / "sub").mkdir()
    (folder / "sub" / "new.md").write_text("The meerkat.\n", encoding="utf-8")
    time.sleep(0.5)
    assert reader.found("lemur") and reader.found("marmot")  # nobody was watching
    proc = start_watcher(tmp_path / "data", folder)
    try:
        reader.until(lambda: reader.found("mongoose") == {"vault/edit.md"} and not reader.found("lemur")
                     and not reader.found("marmot") and reader.found("meerkat") == {"vault/sub/new.md"},
                     "the catch-up after a kill", proc)
        check_store_consistent(reader.nb)
    finally:
        kill(proc)


def test_the_watcher_waits_for_another_writers_lock(vault, tmp_path):
    """An `ingest` holding the writer lock delays the watcher's batch; it never interleaves."""
    from retrieval.locking import write_lock

    folder, reader = vault
    proc = start_watcher(tmp_path / "data", folder)
    try:
        reader.until(lambda: reader.found("quokka"), "the catch-up scan", proc)
        with write_lock(tmp_path / "data"):
            (folder / "locked.md").write_text("The dugong waits.\n", encoding="utf-8")
            time.sleep(1.5)
            assert not reader.found("dugong")  # the batch is waiting for the lock
        reader.until(lambda: reader.found("dugong") == {"vault/locked.md"}, "the batch after the lock is free", proc)
        check_store_consistent(reader.nb)
    finally:
        kill(proc)


def test_a_file_changing_while_read_ends_with_its_last_content(vault, tmp_path):
    folder, reader = vault
    proc = start_watcher(tmp_path / "data", folder)
    try:
        reader.until(lambda: reader.found("quokka"), "the catch-up scan", proc)
        target = folder / "growing.md"
        stop = time.monotonic() + 2.0
        n = 0
        with open(target, "w", encoding="utf-8") as fh:  # appended to while the watcher reads it
            while time.monotonic() < stop:
                fh.write(f"line {n} of the heron log.\n" + "filler words here. " * 50 + "\n")
                fh.flush()
                n += 1
                time.sleep(0.005)
            fh.write("The last line names the kingfisher.\n")
        reader.until(lambda: reader.found("kingfisher") == {"vault/growing.md"}, "the final content", proc)
        nb = reader.open()
        doc = nb.document(next(d.id for d in nb.documents() if d.source == "vault/growing.md"))
        assert doc.text == target.read_text(encoding="utf-8")
    finally:
        kill(proc)


# --- the planning step alone ---------------------------------------------------------


def test_plan_turns_events_into_files_and_folders(tmp_path):
    root = tmp_path.resolve()
    (root / "a.md").write_text("x")
    (root / "new").mkdir()
    ignored = Ignored([root], ["*.draft.md"])
    batch = plan([(MODIFIED, str(root / "a.md")), (ADDED, str(root / "new")), (DELETED, str(root / "old" / "b.md")),
                  (DELETED, str(root / "gone-folder")), (ADDED, str(root / ".obsidian" / "c.md")),
                  (ADDED, str(root / "x.draft.md")), (ADDED, str(root / "a.md.swp")), (DELETED, str(root / "#a.md#"))], ignored)
    assert batch.files == {root / "a.md"}
    assert batch.folders == {root / "new", root / "old", root}
    assert batch.paths([root]) == [root]  # the root covers the rest; a vanished folder climbs to one that exists


def test_options_are_checked():
    with pytest.raises(ValueError, match="step_ms <= debounce_ms"):
        WatchOptions(debounce_ms=10, step_ms=50)
    assert not Batch()


def test_serve_watch_makes_new_notes_searchable_over_http(vault, tmp_path):
    """`noteloom serve --watch`: the watcher writes through the notebook the API serves."""
    import httpx

    from tests.helpers import serve, stop

    folder, _ = vault
    proc, base = serve(tmp_path / "data", {"NOTELOOM_EMBEDDING_MODEL": "hashing"},
                       command=[sys.executable, "-m", "service.cli"], extra=["--watch", str(folder)])
    try:
        def found(word: str) -> set[str]:
            hits = httpx.post(base + "/search", json={"query": word, "mode": "lexical"}, timeout=10).json()["hits"]
            return {h["source"] for h in hits}

        reader = Reader(tmp_path / "data")
        reader.until(lambda: found("quokka") == {"vault/alpha.md"}, "the catch-up scan", proc)
        (folder / "served.md").write_text("The served jerboa.\n", encoding="utf-8")
        reader.until(lambda: found("jerboa") == {"vault/served.md"}, "a new note over HTTP", proc)
        (folder / "served.md").unlink()
        reader.until(lambda: not found("jerboa"), "a deleted note over HTTP", proc)
    finally:
        stop(proc)


def test_a_batch_that_times_out_on_the_lock_is_retried(tmp_path):
    """As in `serve --watch`, where writes wait at most NOTELOOM_WRITE_LOCK_SECONDS."""
    from ingest import Ingestor
    from ingest.watch import Watcher
    from retrieval import Notebook
    from retrieval.locking import write_lock

    folder = tmp_path / "vault"
    folder.mkdir()
    nb = Notebook(tmp_path / "data", embedding_model="hashing")
    nb.write_timeout = 0.2
    reports = []
    watcher = Watcher(Ingestor(nb), [folder], WatchOptions(debounce_ms=100, retry_seconds=0.2), on_report=reports.append)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert watcher.ready.wait(WAIT_SECONDS)
        with write_lock(tmp_path / "data"):
            (folder / "late.md").write_text("The patient okapi.\n", encoding="utf-8")
            time.sleep(1.5)  # several tries time out meanwhile
            assert [s for r in reports for s in r.added] == []
        deadline = time.monotonic() + WAIT_SECONDS
        while not {h.source for h in nb.search("okapi", mode="lexical")} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {h.source for h in nb.search("okapi", mode="lexical")} == {"vault/late.md"}
    finally:
        stop.set()
        thread.join(10)
        nb.close()
    assert not thread.is_alive()
