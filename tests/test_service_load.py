"""Overload and hostile connections: admission control per route class, read
timeouts per connection, and a bounded wait for the writer lock. Real servers on
127.0.0.1 (``noteloom serve`` in a subprocess); the only stand-ins are a hashing
embedder (so a server starts in seconds) and a test-only slow path: a question
starting with "slow" sleeps ``SLOW_SECONDS`` before it is answered. Behaviour is
asserted, not timings; each wait below is a bound, not a measurement."""

import asyncio
import fcntl
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from retrieval import Notebook
from retrieval.errors import WriteLockTimeoutError
from service.admission import CHEAP_WRITES, ROUTE_CLASSES, Gate, route_key
from service.capacity import Limit, parse_limits
from tests.helpers import serve, stop

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "load-key"
SLOW_SECONDS = 3.0
TIMEOUT = 1.0  # the tight server's header, body, keep-alive and writer-lock bounds
BOUND = 20.0  # seconds any single step below may take before the test fails instead of hanging

CHILD = f"""
import sys, time
import numpy as np
import runtime
from retrieval.notebook import Notebook

def hashed(texts):
    out = np.zeros((len(texts), 32), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, sum(word.encode()) % 31] += 1.0
        out[i, 31] = 0.1
    return out / np.linalg.norm(out, axis=1, keepdims=True)

runtime.get_embedder = lambda spec=None: hashed
answer = Notebook.ask
def ask(self, question, k=5, **options):
    if question.startswith("slow"):
        time.sleep({SLOW_SECONDS})
    if question.startswith("stuck"):
        time.sleep(120)
    return answer(self, question, k, **options)
Notebook.ask = ask

from service.cli import main
sys.exit(main(sys.argv[1:]))
"""


def start(data: Path, env: dict[str, str]):
    proc, base = serve(data, {"NOTELOOM_API_KEY": API_KEY, **env}, command=[sys.executable, "-c", CHILD])
    port = int(base.rsplit(":", 1)[1])
    client = httpx.Client(base_url=base, headers={"X-API-Key": API_KEY}, timeout=BOUND)
    client.port, client.data = port, data
    r = client.post("/documents", json={"text": "# Fusion\n\nReciprocal rank fusion merges rankings.", "source": "fusion.md"})
    assert r.status_code == 201, r.text
    return proc, client


def stop_with(proc, client) -> None:
    client.close()
    stop(proc)


@pytest.fixture(scope="module")
def tight(tmp_path_factory):
    """One /ask at a time and one waiting; every connection and lock bound is TIMEOUT."""
    seconds = str(TIMEOUT)
    proc, client = start(tmp_path_factory.mktemp("tight"), {
        "NOTELOOM_ADMISSION": "ask=1/1/0.5", "NOTELOOM_HEADER_SECONDS": seconds, "NOTELOOM_BODY_SECONDS": seconds,
        "NOTELOOM_KEEP_ALIVE_SECONDS": seconds, "NOTELOOM_WRITE_LOCK_SECONDS": seconds})
    yield client
    stop_with(proc, client)


@pytest.fixture(scope="module")
def roomy(tmp_path_factory):
    """Every setting at its default."""
    proc, client = start(tmp_path_factory.mktemp("roomy"), {})
    yield client
    stop_with(proc, client)


def post_ask(client: httpx.Client, question: str, key: str | None = API_KEY) -> httpx.Response:
    with httpx.Client(base_url=client.base_url, timeout=BOUND) as own:  # one connection each: really concurrent
        return own.post("/ask", json={"question": question}, headers={"X-API-Key": key} if key else {})


def assert_refusal(r: httpx.Response, error: str) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status_code"] == 503 and body["error"] == error and body["detail"]
    assert r.headers["retry-after"].isdigit() and int(r.headers["retry-after"]) >= 1


def saturate_ask(client: httpx.Client, pool: ThreadPoolExecutor, count: int = 2):
    """``count`` slow questions in flight; returns their futures once /ask refuses a
    fast probe. The probe is fast so that, admitted, it does not hold the slot itself
    (a slow probe could be admitted round after round); slow questions that ended
    are sent again, and the whole wait is bounded."""
    futures = [pool.submit(post_ask, client, f"slow {i}") for i in range(count)]
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if post_ask(client, "probe: what merges rankings?").status_code == 503:
            return futures
        futures = [pool.submit(post_ask, client, "slow again") if f.done() else f for f in futures]
        time.sleep(0.05)
    pytest.fail("/ask never filled up")


# --- admission control, through a real server ---------------------------------------


def test_requests_beyond_the_slots_and_the_queue_get_a_json_503_with_retry_after(tight):
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda i: post_ask(tight, f"slow {i}"), range(4)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 1 and statuses.count(503) >= 2 and set(statuses) <= {200, 503}, statuses
    for r in responses:
        if r.status_code == 503:
            assert_refusal(r, "OverloadedError")
    assert "reciprocal" in tight.post("/ask", json={"question": "what merges rankings?"}).text.lower()


def test_cheap_routes_and_other_classes_answer_while_ask_is_saturated(tight):
    with ThreadPoolExecutor(3) as pool:
        futures = saturate_ask(tight, pool)
        assert tight.get("/health").status_code == 200
        assert tight.get("/documents").status_code == 200
        assert tight.get("/schema/openapi.json").status_code == 200
        assert tight.post("/search", json={"query": "rank fusion"}).status_code == 200
        assert not all(f.done() for f in futures), "the slow questions ended before the cheap routes were tried"
        assert any(f.result().status_code == 200 for f in futures)


def test_a_request_without_the_key_takes_no_slot(tight):
    with ThreadPoolExecutor(3) as pool:
        saturate_ask(tight, pool)
        assert post_ask(tight, "slow", key=None).status_code == 401


# --- connections ------------------------------------------------------------------------


def read_until_closed(sock: socket.socket) -> bytes | None:
    """What the server sends before it closes the connection; None if it is still open after BOUND seconds."""
    received, deadline = b"", time.monotonic() + BOUND
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return received
        except socket.timeout:
            return None
        if not data:
            return received
        received += data
    return None


@pytest.mark.parametrize("sent", [b"", b"GET /health HTTP/1.1\r\nHost: x\r\n"], ids=["nothing", "half the headers"])
def test_a_connection_that_does_not_finish_its_headers_is_closed(tight, sent):
    with socket.create_connection(("127.0.0.1", tight.port)) as sock:
        sock.sendall(sent)
        assert read_until_closed(sock) == b""


def test_a_request_body_that_stops_arriving_is_closed_and_the_server_goes_on(tight):
    with socket.create_connection(("127.0.0.1", tight.port)) as sock:
        sock.sendall(b"POST /search HTTP/1.1\r\nHost: x\r\nX-API-Key: " + API_KEY.encode()
                     + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"query\": ")
        assert read_until_closed(sock) == b""
    assert tight.post("/search", json={"query": "rank fusion"}).status_code == 200


def test_an_idle_keep_alive_connection_is_closed(tight):
    with socket.create_connection(("127.0.0.1", tight.port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_until_closed(sock)  # one whole response, then the server closes the idle connection
        assert answer is not None and answer.startswith(b"HTTP/1.1 200") and answer.count(b"HTTP/1.1") == 1


def test_two_hundred_idle_connections_do_not_make_requests_fail(roomy):
    socks = [socket.create_connection(("127.0.0.1", roomy.port)) for _ in range(200)]
    try:
        for _ in range(5):
            assert roomy.get("/health").status_code == 200
        assert roomy.post("/search", json={"query": "rank fusion"}).status_code == 200
        assert roomy.post("/ask", json={"question": "what merges rankings?"}).status_code == 200
        for sock in socks:  # still held open: they were there while the requests were served
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
    finally:
        for sock in socks:
            sock.close()


# --- the writer lock ---------------------------------------------------------------------


def test_a_write_facing_a_held_writer_lock_is_a_503_with_retry_after(tight):
    before = tight.get("/documents").json()["total"]
    with open(tight.data / "write.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # as a CLI ingest holds it
        try:
            r = tight.post("/documents", json={"text": "# Held\n\nWritten later.", "source": "held.md"})
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    assert_refusal(r, "WriteLockTimeoutError")
    assert tight.get("/documents").json()["total"] == before
    r = tight.post("/documents", json={"text": "# Held\n\nWritten later.", "source": "held.md"})
    assert r.status_code == 201, r.text


def hashed(texts):
    out = np.ones((len(texts), 8), dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_notebook_writer_waits_within_its_timeout_and_by_default_as_long_as_it_takes(tmp_path):
    nb = Notebook(tmp_path / "data", embedder=hashed)
    with open(nb.folder / "write.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(WriteLockTimeoutError, match="write.lock"):
            with nb.writer(timeout=0.1):
                pass
        nb.write_timeout = 0.1
        with pytest.raises(WriteLockTimeoutError):
            with nb.writer():
                pass
        nb.write_timeout = None
        threading.Timer(0.3, fcntl.flock, (fh, fcntl.LOCK_UN)).start()
        with nb.writer() as writer:  # no bound: it gets the lock once released
            writer.set_meta("probe", {"ok": True})
    assert nb.store.get_meta("probe") == {"ok": True}


# --- the gate and the route table ------------------------------------------------------


async def hold(gate: Gate, log: list, name: str, release: asyncio.Event) -> None:
    if await gate.enter():
        log.append(name)
        await release.wait()
        gate.leave(0.01)
    else:
        log.append(f"refused {name}")


def test_gate_admits_in_order_queues_within_bounds_and_refuses_beyond():
    async def scenario():
        gate, log, release = Gate("t", Limit(running=1, queued=2, wait=5.0)), [], asyncio.Event()
        tasks = [asyncio.create_task(hold(gate, log, n, release)) for n in "abcd"]
        await asyncio.sleep(0.05)
        assert log == ["a", "refused d"] and gate.running == 1 and len(gate.waiting) == 2
        release.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        assert log == ["a", "refused d", "b", "c"] and gate.running == 0 and not gate.waiting

    asyncio.run(scenario())


def test_gate_refuses_at_once_when_the_predicted_wait_is_too_long_and_passes_on_a_cancelled_slot():
    async def scenario():
        gate = Gate("t", Limit(running=1, queued=10, wait=0.5))
        gate.seconds = 2.0  # recent requests took 2 s: the first in line would wait longer than 0.5 s
        assert await gate.enter()
        assert not await gate.enter() and gate.retry_after() >= 2
        gate.seconds = 0.05
        waiter = asyncio.create_task(gate.enter())
        second = asyncio.create_task(gate.enter())
        await asyncio.sleep(0.01)
        waiter.cancel()
        gate.leave(None)
        assert await asyncio.wait_for(second, 5) and gate.running == 1 and not gate.waiting

    asyncio.run(scenario())


def test_every_route_that_is_not_a_read_has_an_admission_class(tmp_path):
    from service.app import ServiceConfig, create_app

    app = create_app(ServiceConfig(data_dir=str(tmp_path / "data")), warm=False)
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in handler.http_methods - {"GET", "HEAD", "OPTIONS"}:
                key = (method, route_key(route.path))
                assert key in ROUTE_CLASSES or key in CHEAP_WRITES, f"{method} {route.path} has no admission class"


def test_admission_settings_name_the_problem():
    assert parse_limits("ask=1/2/0.5", 2)["ask"] == Limit(1, 2, 0.5)
    with pytest.raises(ValueError, match="unknown admission class 'asks'"):
        parse_limits("asks=1/2/0.5")
    with pytest.raises(ValueError, match="running/queued/wait"):
        parse_limits("ask=1/2")
    with pytest.raises(ValueError, match="running 1..1024"):
        parse_limits("ask=0/2/0.5")


def test_sigterm_stops_the_server_within_a_bound_while_work_is_in_flight(tmp_path):
    """Shutdown is bounded (uvicorn's graceful timeout, 10 s): work stuck for two
    minutes does not keep the server alive (it once ignored SIGTERM for minutes)."""
    proc, client = start(tmp_path / "data", {})
    pool = ThreadPoolExecutor(2)
    try:
        stuck = pool.submit(post_ask, client, "stuck question about fusion")
        time.sleep(1.0)  # the request is in flight
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert time.monotonic() - sent < 20
        try:
            answer = stuck.result(timeout=BOUND)
        except httpx.HTTPError:
            answer = None  # the connection was closed: equally an end
        assert answer is None or answer.status_code != 200, answer.text
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        if proc.poll() is None:
            proc.kill()
        client.close()
