"""Uploads are parsed and chunked in worker processes: whatever the input, the
server's other requests keep answering, an upload over the time limit gets a 4xx
naming the limit, the worker is replaced, and nothing half-written is stored.
A real server on 127.0.0.1 and real worker processes; no mocks."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from ingest import ChunkSettings, CorruptFileError, EmptyDocumentError
from ingest.isolation import RemoteTraceback, WorkerDiedError, WorkerLimitError, Workers
from service.errors import status_for
from tests.helpers import serve, stop

ROOT = Path(__file__).resolve().parent.parent
LIMIT_SECONDS = 0.5  # a small note prepares in milliseconds; the 16 MB one below takes seconds
HEALTH_BOUND = 1.0  # seconds; the threaded server stalled /health for several


def pathological_markdown(size: int = 40_000) -> bytes:
    """Heading-like ``# # # …`` text: quadratic for the regular expressions of the day."""
    return (b"# " * (size // 2))[: size - 1] + b"x"


def big_markdown(megabytes: int = 16) -> bytes:
    section = "## Section\n\n" + "A plain sentence about lenses and light, nothing unusual. " * 18 + "\n\n"
    return (section * (megabytes * 1024 * 1024 // len(section))).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    proc, base = serve(data, {"NOTELOOM_DOCUMENT_SECONDS": str(LIMIT_SECONDS)})
    client = httpx.Client(base_url=base, timeout=120)
    client.pid = proc.pid
    yield client
    client.close()
    try:
        pids = worker_pids(proc.pid)
    finally:
        stop(proc)
    assert pids and all(gone(pid) for pid in pids), "workers outlived the server"


def worker_pids(server_pid: int) -> list[int]:
    """The server's child processes (each thread lists the children it started)."""
    files = list(Path(f"/proc/{server_pid}/task").glob("*/children"))
    assert files, "/proc/PID/task/TID/children is missing (Linux with CONFIG_PROC_CHILDREN is assumed)"
    return sorted(int(pid) for f in files for pid in f.read_text().split())


def gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" in status.read_text()


def while_health_polled(client: httpx.Client, request) -> tuple[httpx.Response, list[float]]:
    """Run ``request()`` on a thread and time /health every 20 ms until it returns (60 s at most)."""
    box = {}
    thread = threading.Thread(target=lambda: box.update(response=request()), daemon=True)
    thread.start()
    latencies = []
    deadline = time.monotonic() + 60
    while thread.is_alive() and time.monotonic() < deadline:
        started = time.perf_counter()
        assert client.get("/health", timeout=10).status_code == 200
        latencies.append(time.perf_counter() - started)
        time.sleep(0.02)
    thread.join(timeout=60)
    assert "response" in box, "the upload did not finish within 60 s"
    return box["response"], latencies


def stored(client: httpx.Client) -> tuple[list, dict]:
    health = client.get("/health").json()
    return client.get("/documents").json()["documents"], {"documents": health["documents"], "chunks": health["chunks"]}


def test_health_answers_while_a_pathological_note_is_parsed(server):
    before = stored(server)
    r, latencies = while_health_polled(server, lambda: server.post(
        "/documents", files={"file": ("hashes.md", pathological_markdown(), "text/markdown")}))
    assert max(latencies) < HEALTH_BOUND, f"/health took {max(latencies):.2f} s while the note was parsed"
    assert r.status_code in (201, status_for(WorkerLimitError("x"))), r.text
    if r.status_code != 201:
        assert stored(server) == before


def test_over_limit_upload_is_refused_the_worker_replaced_and_nothing_stored(server):
    before = stored(server)
    pids = worker_pids(server.pid)
    r, latencies = while_health_polled(server, lambda: server.post(
        "/documents", files={"file": ("big.md", big_markdown(), "text/markdown")}))
    assert len(latencies) >= 3 and max(latencies) < HEALTH_BOUND
    assert r.status_code == status_for(WorkerLimitError("x")) and 400 <= r.status_code < 500, r.text
    body = r.json()
    assert body["status_code"] == r.status_code and body["error"] == "WorkerLimitError"
    assert f"big.md: took longer than {LIMIT_SECONDS:g} s to parse and chunk (limit document_seconds)" in body["detail"]
    assert stored(server) == before
    assert not set(worker_pids(server.pid)) & set(pids), "the worker over the limit is still running"
    r = server.post("/documents", json={"text": "# After\n\nThe next upload is parsed by a fresh worker.", "source": "after.md"})
    assert r.status_code == 201 and r.json()["chunks"] == 1


def test_a_worker_killed_from_outside_is_replaced_before_the_next_upload(server):
    (pid,) = worker_pids(server.pid)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    r = server.post("/documents", json={"text": "# Survivor\n\nStill parsed.", "source": "survivor.md", "collection": "other"})
    assert r.status_code == 201, r.text
    assert r.json()["source"] == "other/survivor.md"
    assert worker_pids(server.pid) and pid not in worker_pids(server.pid)


def test_errors_raised_in_the_worker_keep_their_status(server):
    r = server.post("/documents", files={"file": ("a.md", b"caf\xe9", "text/markdown")})
    assert r.status_code == 400 and r.json()["error"] == "CorruptFileError" and "offset 3" in r.json()["detail"]
    r = server.post("/documents", json={"text": "   ", "source": "blank.md"})
    assert r.status_code == 400 and "empty" in json.dumps(r.json())
    r = server.post("/documents", json={"text": "# x", "source": "../up.md"})
    assert r.status_code == 400 and "'..'" in r.json()["detail"]
    r = server.post("/documents", json={"text": "# x", "source": "a.md", "collection": "bad name"})
    assert r.status_code == 400 and "collection" in r.json()["detail"]


# --- the pool itself ------------------------------------------------------------


@pytest.fixture(scope="module")
def workers():
    with Workers(ChunkSettings.of(), seconds=LIMIT_SECONDS, memory_bytes=512 * 1024 * 1024) as pool:
        pool.wait_ready()
        yield pool


def test_workers_prepare_like_the_library(workers):
    from ingest.pipeline import prepare

    data = b"---\ntitle: Lenses\ntags: [optics]\n---\n# Lenses\n\nA prime lens has one focal length.\n"
    here = prepare(data, "lenses.md", None, ChunkSettings.of())
    there = workers.prepare(data, "lenses.md")
    assert there.loaded == here.loaded and there.chunks == here.chunks


def test_workers_send_many_chunks_back_in_parts(workers):
    from ingest import isolation

    data = big_markdown(1)
    workers.seconds = 30
    try:
        prepared = workers.prepare(data, "one-mb.md")
    finally:
        workers.seconds = LIMIT_SECONDS
    assert len(prepared.chunks) > 2 * isolation.CHUNKS_PER_MESSAGE
    assert [c.index for c in prepared.chunks] == list(range(len(prepared.chunks)))
    assert all(prepared.loaded.text[c.start : c.end] == c.text for c in prepared.chunks)


def test_worker_errors_keep_their_type_and_carry_the_workers_traceback(workers):
    with pytest.raises(CorruptFileError, match="offset 3") as info:
        workers.prepare(b"caf\xe9", "a.md")
    assert isinstance(info.value.__cause__, RemoteTraceback) and "load_bytes" in str(info.value.__cause__)
    with pytest.raises(EmptyDocumentError):
        workers.prepare(b"  \n", "blank.md")


def test_workers_over_the_time_or_memory_limit_are_replaced(workers):
    before = workers.pids()
    with pytest.raises(WorkerLimitError, match="limit document_seconds"):
        workers.prepare(big_markdown(16), "big.md")
    with pytest.raises(WorkerLimitError, match="limit worker_memory_bytes"):
        workers.seconds = 60
        try:
            workers.prepare(big_markdown(48), "huge.md")
        finally:
            workers.seconds = LIMIT_SECONDS
    assert workers.replaced >= 2 and not set(workers.pids()) & set(before)
    assert workers.prepare(b"# Fine\n\nAgain.", "fine.md").chunks[0].text == "# Fine\n\nAgain."


def test_workers_load_no_torch(workers):
    workers.prepare(b"# Warm\n\ntext", "warm.md")
    for pid in workers.pids():
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "libtorch" not in maps and "faiss" not in maps


def test_closing_stops_every_worker_and_fails_waiting_callers():
    pool = Workers(ChunkSettings.of(), seconds=30).start()
    pool.wait_ready()
    pids = pool.pids()
    errors = []

    def busy():
        try:
            pool.prepare(big_markdown(16), "big.md")
        except WorkerDiedError as exc:
            errors.append(exc)

    thread = threading.Thread(target=busy)
    thread.start()
    time.sleep(0.5)
    pool.close()
    thread.join(timeout=30)
    assert errors and not thread.is_alive()
    assert all(gone(pid) for pid in pids)
    with pytest.raises(WorkerDiedError, match="shut down"):
        pool.prepare(b"# x", "x.md")
