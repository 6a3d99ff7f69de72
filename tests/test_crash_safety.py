"""An ingest killed with SIGKILL at random instants leaves a consistent store,
and finishing the ingest afterwards gives exactly what a clean ingest gives."""

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ingest import ChunkSettings, Ingestor
from retrieval import Notebook
from tests.helpers import check_store_consistent

CHILD = Path(__file__).with_name("crash_ingest_child.py")
ROOT = Path(__file__).resolve().parent.parent


def make_corpus(folder: Path, notes_dir: Path, variant: int) -> None:
    """~36 small files; each variant edits some, removes some, adds some."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    for note in sorted(notes_dir.glob("*.md")):
        parts = note.read_text(encoding="utf-8").split("\n## ")
        for i, part in enumerate(parts[:4]):
            if (i + variant) % 7 == 0:
                continue  # removed in this variant
            text = part if i == 0 else "## " + part
            if (i + variant) % 3 == 0:
                text += f"\n\nEdited in variant {variant}.\n"
            (folder / f"{note.stem}-{i}.md").write_text(text, encoding="utf-8")


def spawn(data: Path, folder: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(CHILD), str(data), str(folder)], stdout=subprocess.PIPE, env=env, text=True)


def test_sigkill_at_random_points_leaves_a_consistent_store(tmp_path, notes_dir):
    rng = random.Random(1234)
    data, folder = tmp_path / "data", tmp_path / "notes"
    killed_mid_ingest = 0
    for iteration in range(8):
        make_corpus(folder, notes_dir, variant=iteration % 3)
        child = spawn(data, folder)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 1.5))
        still_running = child.poll() is None
        child.send_signal(signal.SIGKILL)
        child.wait()
        killed_mid_ingest += still_running
        nb = Notebook(data)
        check_store_consistent(nb)
        nb.store.close()
    assert killed_mid_ingest >= 4, "the kills should mostly land during the ingest"
    # Finish the interrupted work; it must equal a clean ingest of the same files.
    make_corpus(folder, notes_dir, variant=0)
    settings = ChunkSettings.of("recursive", max_tokens=64)
    nb = Notebook(data)
    Ingestor(nb, settings).ingest_paths([folder], prune=True)
    clean = Notebook(tmp_path / "clean")
    Ingestor(clean, settings).ingest_paths([folder], prune=True)
    snapshot = lambda n: sorted(n.store.db.execute("SELECT id, doc_id, start, end, text FROM chunks").fetchall())  # noqa: E731
    assert snapshot(nb) == snapshot(clean)
    assert check_store_consistent(nb) == check_store_consistent(clean)


def test_readers_keep_answering_while_another_process_ingests(tmp_path, notes_dir):
    data, folder = tmp_path / "data", tmp_path / "notes"
    make_corpus(folder, notes_dir, variant=1)
    nb = Notebook(data)
    Ingestor(nb, ChunkSettings.of("recursive", max_tokens=64)).ingest_paths([notes_dir / "rag-embeddings-faiss.md"])
    errors, answered = [], []

    def read_loop(stop: threading.Event) -> None:
        reader = Notebook(data)
        while not stop.is_set():
            try:
                for h in reader.search("FAISS index types", k=3):
                    assert reader.document(h.doc_id)["text"][h.start : h.end] == h.text
                answered.append(1)
            except Exception as exc:  # noqa: BLE001 - the assertion below reports it
                errors.append(repr(exc))

    stop = threading.Event()
    thread = threading.Thread(target=read_loop, args=(stop,))
    child = spawn(data, folder)
    assert child.stdout.readline().strip() == "ready"
    thread.start()
    out, _ = child.communicate(timeout=300)
    stop.set()
    thread.join()
    assert "done" in out and not errors and len(answered) > 3
    check_store_consistent(Notebook(data))
