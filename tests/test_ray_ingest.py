"""Ingest on Ray (``ingest.ray_engine``) gives what a local ingest gives, skips
unchanged files the same way, and keeps the crash-safety contract when the driver
or a worker is killed. One local Ray (2 CPUs) serves the whole module: it takes
seconds to start. Every wait is bounded by the engine's stall limit or a timeout."""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ingest import ChunkSettings, IngestError, Ingestor
from ingest.ray_engine import RayEngine, RayIngestError
from retrieval import Notebook
from runtime import HashingEmbedder
from tests.helpers import check_store_consistent
from tests.test_crash_safety import make_corpus

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).with_name("crash_ray_child.py")
SETTINGS = ChunkSettings.of("recursive", max_tokens=64)
STALL = 120.0  # longest wait for any Ray result in these tests


@pytest.fixture(scope="module")
def engine():
    engine = RayEngine(num_cpus=2, files_per_batch=4, stall_seconds=STALL)
    engine.connect()
    yield engine
    engine.close()


def snapshot(nb: Notebook) -> list[tuple]:
    return sorted(nb.store.db.execute("SELECT id, doc_id, start, end, text FROM chunks").fetchall())


def vectors(nb: Notebook) -> dict[int, np.ndarray]:
    index = nb.index()
    return {cid: index.index.reconstruct(cid) for cid, *_ in snapshot(nb)}


def report_of(report) -> dict:
    out = report.to_dict()
    out.pop("seconds")
    return out


def mixed_folder(folder: Path, notes_dir: Path) -> Path:
    """The sample notes (Markdown, HTML, text) plus front matter, an empty note and a binary file."""
    make_corpus(folder, notes_dir, variant=0)
    (folder / "tagged.md").write_text("---\ntitle: Tagged\ntags: [ray, test]\n---\n# Tagged\n\nA note with tags.\n")
    (folder / "empty.md").write_text("   \n")
    (folder / "blob.md").write_bytes(b"\x00\x01binary\xff" * 20)
    for note in notes_dir.iterdir():
        if note.suffix != ".md":
            (folder / note.name).write_bytes(note.read_bytes())
    return folder


def ingest_both(tmp_path: Path, folder: Path, engine: RayEngine, **options):
    local, remote = Notebook(tmp_path / "local", embedder=HashingEmbedder()), Notebook(tmp_path / "ray", embedder=HashingEmbedder())
    got_local = Ingestor(local, SETTINGS).ingest_paths([folder], **options)
    got_ray = Ingestor(remote, SETTINGS, engine=engine).ingest_paths([folder], **options)
    return local, remote, got_local, got_ray


def test_ray_ingest_equals_local_ingest(tmp_path, notes_dir, engine):
    folder = mixed_folder(tmp_path / "notes", notes_dir)
    local, remote, got_local, got_ray = ingest_both(tmp_path, folder, engine)
    assert report_of(got_ray) == report_of(got_local)
    assert len(got_ray.added) > 25 and got_ray.skipped and got_ray.failed  # the empty note and the binary file
    assert snapshot(remote) == snapshot(local)
    documents = "SELECT id, source, title, tags, content_hash, chunker FROM documents ORDER BY id"
    assert remote.store.db.execute(documents).fetchall() == local.store.db.execute(documents).fetchall()
    want, got = vectors(local), vectors(remote)
    assert got.keys() == want.keys()
    assert all(np.allclose(got[k], want[k], atol=1e-6) for k in want)
    check_store_consistent(remote)


def test_incremental_reingest_skips_unchanged_files_the_same_way(tmp_path, notes_dir, engine):
    folder = mixed_folder(tmp_path / "notes", notes_dir)
    local, remote, _, _ = ingest_both(tmp_path, folder, engine)
    names = sorted(p.name for p in folder.glob("*-*.md"))  # the split sample notes
    (folder / names[0]).write_text((folder / names[0]).read_text() + "\n\nA new paragraph.\n")  # changed
    os.utime(folder / names[1], (time.time() - 100, time.time() - 100))  # touched: same content, new stamp
    (folder / names[2]).unlink()  # gone: pruned
    (folder / "added.md").write_text("# Added\n\nA note added later.\n")
    got_local = Ingestor(local, SETTINGS).ingest_paths([folder], prune=True)
    got_ray = Ingestor(remote, SETTINGS, engine=engine).ingest_paths([folder], prune=True)
    assert report_of(got_ray) == report_of(got_local)
    assert len(got_ray.updated) == 1 and len(got_ray.added) == 1 and len(got_ray.removed) == 1
    assert got_ray.chunks_embedded < 20 and got_ray.unchanged > 25
    assert snapshot(remote) == snapshot(local)
    again = Ingestor(remote, SETTINGS, engine=engine).ingest_paths([folder])
    assert again.chunks_embedded == 0 and not again.added and not again.updated


@pytest.mark.parametrize("model,tolerance", [("all-MiniLM-L6-v2", 1e-4), ("all-MiniLM-L6-v2@onnx-int8", 0.0)])
def test_real_model_vectors_match_within_float_tolerance(tmp_path, notes_dir, engine, model, tolerance):
    """all-MiniLM-L6-v2 in the actor: torch batches differ from the local ingest's, so vectors agree to
    rounding; onnx-int8 embeds each text alone, so they are equal."""
    folder = tmp_path / "notes"
    folder.mkdir()
    for note in sorted(notes_dir.glob("*.md"))[:3]:
        (folder / note.name).write_bytes(note.read_bytes())
    local, remote = Notebook(tmp_path / "local", embedding_model=model), Notebook(tmp_path / "ray", embedding_model=model)
    Ingestor(local, SETTINGS).ingest_paths([folder])
    Ingestor(remote, SETTINGS, engine=engine).ingest_paths([folder])
    assert snapshot(remote) == snapshot(local)
    want, got = vectors(local), vectors(remote)
    assert max(float(np.abs(got[k] - want[k]).max()) for k in want) <= tolerance
    top = [[h.chunk_id for h in nb.search("FAISS index", k=3, mode="dense")] for nb in (local, remote)]
    assert top[0] and top[0] == top[1]


def test_cli_engine_ray_reports_and_stores_what_a_local_ingest_does(tmp_path, notes_dir, engine, monkeypatch, capsys):
    from service.cli import main

    monkeypatch.setenv("NOTELOOM_EMBEDDING_MODEL", "hashing")
    folder = tmp_path / "notes"
    folder.mkdir()
    for note in sorted(notes_dir.glob("*.md"))[:4]:
        (folder / note.name).write_bytes(note.read_bytes())
    reports = []
    for name, engine_args in (("local", []), ("ray", ["--engine", "ray"])):
        assert main(["--data", str(tmp_path / name), "ingest", str(folder), "--json", *engine_args]) == 0
        reports.append(json.loads(capsys.readouterr().out))
        reports[-1].pop("seconds")
    assert reports[0] == reports[1] and len(reports[1]["added"]) == 4
    assert snapshot(Notebook(tmp_path / "ray")) == snapshot(Notebook(tmp_path / "local"))


def test_pool_is_sized_below_the_cpu_count(engine):
    assert engine.pool() == {"cpus": 2, "gpus": 0, "actors": 1, "threads": 2}
    assert RayEngine(threads=1).pool()["threads"] == 1
    with pytest.raises(IngestError, match="actors=2 cannot run on 2 CPUs"):
        RayEngine(actors=2).pool()
    for bad in ({"actors": 0}, {"files_per_batch": "8"}, {"num_cpus": True}, {"stall_seconds": 0}, {"threads": 0},
                {"restarts": -1}):
        with pytest.raises(IngestError, match=repr(next(iter(bad.values())))):
            RayEngine(**bad)


def spawn(data: Path, folder: Path) -> subprocess.Popen:
    import ray

    address = ray.get_runtime_context().gcs_address  # this module's Ray, not whichever started last here
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(CHILD), str(data), str(folder), address], stdout=subprocess.PIPE,
                            env=env, text=True)


def test_sigkill_of_the_driver_leaves_a_consistent_store(tmp_path, notes_dir, engine):
    rng = random.Random(15)
    data, folder = tmp_path / "data", tmp_path / "notes"
    killed_mid_ingest = 0
    for iteration in range(3):
        make_corpus(folder, notes_dir, variant=iteration)
        child = spawn(data, folder)
        try:
            assert child.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.2, 1.6))  # the ingest takes 18 batches of at least 0.1 s
            killed_mid_ingest += child.poll() is None
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=60)
        nb = Notebook(data, embedder=HashingEmbedder())
        check_store_consistent(nb)
        nb.store.close()
    assert killed_mid_ingest >= 2, "the kills should mostly land during the ingest"
    make_corpus(folder, notes_dir, variant=0)
    finished = Notebook(data, embedder=HashingEmbedder())
    Ingestor(finished, SETTINGS, engine=engine).ingest_paths([folder], prune=True)
    clean = Notebook(tmp_path / "clean", embedder=HashingEmbedder())
    Ingestor(clean, SETTINGS).ingest_paths([folder], prune=True)
    assert snapshot(finished) == snapshot(clean)
    assert check_store_consistent(finished) == check_store_consistent(clean)


class PidEmbedder:
    """HashingEmbedder that writes its process id to a folder and works slowly,
    so the test can kill the embedding actor while it has work."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.inner = folder, HashingEmbedder()

    def __call__(self, texts):
        (self.folder / str(os.getpid())).touch()
        time.sleep(0.2)
        return self.inner.embed_batch(texts)


def test_sigkill_of_a_worker_loses_and_duplicates_nothing(tmp_path, notes_dir, engine):
    """Ray restarts the killed embedding actor and redoes its batch; the driver stores each file once."""
    data, folder, pids = tmp_path / "data", tmp_path / "notes", tmp_path / "pids"
    pids.mkdir()
    make_corpus(folder, notes_dir, variant=1)
    killed: list[int] = []

    def kill_first_actor() -> None:
        deadline = time.monotonic() + STALL
        while time.monotonic() < deadline and not killed:
            for name in os.listdir(pids):
                os.kill(int(name), signal.SIGKILL)
                killed.append(int(name))
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_actor)
    killer.start()
    nb = Notebook(data, embedder=HashingEmbedder())
    with RayEngine(files_per_batch=2, stall_seconds=STALL, embedder=PidEmbedder(pids)) as slow:
        report = Ingestor(nb, SETTINGS, batch_chunks=4, engine=slow).ingest_paths([folder], prune=True)
    killer.join(timeout=STALL)
    assert killed, "the embedding actor never started"
    assert len(os.listdir(pids)) >= 2, "the pool should have replaced the killed actor"
    assert not report.failed and report.chunks_embedded == check_store_consistent(nb)["chunks"]
    clean = Notebook(tmp_path / "clean", embedder=HashingEmbedder())
    Ingestor(clean, SETTINGS).ingest_paths([folder], prune=True)
    assert snapshot(nb) == snapshot(clean)
    assert check_store_consistent(nb) == check_store_consistent(clean)


def test_one_pool_serves_every_ingest_of_an_engine(tmp_path, notes_dir):
    """The actors start once (at warm) and embed for each later ingest: one process did all of it."""
    folder, pids = tmp_path / "notes", tmp_path / "pids"
    pids.mkdir()
    make_corpus(folder, notes_dir, variant=0)
    with RayEngine(stall_seconds=STALL, embedder=PidEmbedder(pids)) as warm:
        warm.warm()
        started = set(os.listdir(pids))
        for name in ("one", "two"):
            report = Ingestor(Notebook(tmp_path / name, embedder=HashingEmbedder()), SETTINGS, engine=warm).ingest_paths([folder])
            assert report.chunks_embedded > 0 and not report.failed
    assert len(started) == 1 and set(os.listdir(pids)) == started
    assert snapshot(Notebook(tmp_path / "one", embedder=HashingEmbedder())) == snapshot(Notebook(tmp_path / "two", embedder=HashingEmbedder()))


def test_an_actor_dead_beyond_its_restarts_fails_the_ingest_clearly_then_a_new_pool_serves(tmp_path, notes_dir):
    """With no restarts left, a killed actor stops the ingest with RayIngestError and what
    was stored is whole; the same engine's next ingest starts a new actor and finishes."""
    data, folder, pids = tmp_path / "data", tmp_path / "notes", tmp_path / "pids"
    pids.mkdir()
    make_corpus(folder, notes_dir, variant=2)
    nb = Notebook(data, embedder=HashingEmbedder())
    with RayEngine(files_per_batch=2, restarts=0, stall_seconds=STALL, embedder=PidEmbedder(pids)) as fragile:
        fragile.warm()  # the actor has embedded once: its process id is known before the ingest
        killed = {int(name) for name in os.listdir(pids)}
        killer = threading.Timer(1.0, lambda: [os.kill(pid, signal.SIGKILL) for pid in killed])
        killer.start()
        with pytest.raises(RayIngestError, match=r"the Ray ingest failed after \d+ of \d+ files: .*actor"):
            Ingestor(nb, SETTINGS, batch_chunks=4, engine=fragile).ingest_paths([folder], prune=True)
        killer.join()
        check_store_consistent(nb)
        report = Ingestor(nb, SETTINGS, batch_chunks=4, engine=fragile).ingest_paths([folder], prune=True)
    assert len(killed) == 1 and {int(name) for name in os.listdir(pids)} - killed, "a new actor should have served"
    assert not report.failed
    clean = Notebook(tmp_path / "clean", embedder=HashingEmbedder())
    Ingestor(clean, SETTINGS).ingest_paths([folder], prune=True)
    assert snapshot(nb) == snapshot(clean)


class StuckEmbedder:
    """Blocks until its release file exists."""

    def __init__(self, release: Path) -> None:
        self.release = release

    def __call__(self, texts):
        while not self.release.exists():
            time.sleep(0.05)
        return HashingEmbedder().embed_batch(texts)


def test_a_stalled_pool_fails_with_a_clear_message_instead_of_hanging(tmp_path, engine):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "one.md").write_text("# One\n\nA note.\n")
    stuck = RayEngine(stall_seconds=2, embedder=StuckEmbedder(tmp_path / "release"))
    started = time.monotonic()
    try:
        with pytest.raises(RayIngestError, match=r"no result from Ray for 2s \(0 of 1 files back; 1 embedding actor"):
            Ingestor(Notebook(tmp_path / "data", embedder=HashingEmbedder()), SETTINGS, engine=stuck).ingest_paths([folder])
        assert time.monotonic() - started < 60
    finally:
        (tmp_path / "release").touch()
        stuck.close()  # the abandoned run stops at its next result
    check_store_consistent(Notebook(tmp_path / "data", embedder=HashingEmbedder()))
