"""The server under load: an open-loop generator against a real server on 127.0.0.1
with the sample notes ingested (issue 11).

For ``/search`` and ``/ask``:

- capacity: the highest rate (requests/s, evenly spaced) at which p99 stays
  within the target (200 ms for /search, 1 s for /ask) and at least 99 % are served;
- at 2x and 5x that rate: goodput (served/s), p99 of the served, p99 of the
  refusals and whether every refusal is JSON with Retry-After; ``/health`` p99 meanwhile;
- a burst of 200 simultaneous requests: served and refused, p50/p99 of each.

And ``/health`` p99 with 200 idle connections open (they never send a byte).
Latency counts from the moment a request was due, not when it was sent (no
coordinated omission). The generator is a small HTTP/1.1 client on asyncio
sockets (keep-alive, one request per connection at a time), so the load it adds
to this machine is small; the server runs in its own process. Results go to
bench/results/load_bench.md.

    .venv/bin/python bench/load_bench.py
    .venv/bin/python bench/load_bench.py --seconds 5 --only search   # quick
    .venv/bin/python bench/load_bench.py --admission ask=1/2/1.0     # other limits (NOTELOOM_ADMISSION)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import benchlib
from benchlib import NOTES, PYTHON, ROOT, log, pct, table

QUESTIONS = ["what is reciprocal rank fusion?", "how large should chunk overlap be?", "which sampler for few steps?",
             "how do I cite a passage?", "what does the negative prompt do?", "how is recall measured?"]
ROUTES = {"search": ("/search", "query", 0.2), "ask": ("/ask", "question", 1.0)}  # path, field, p99 target (s)
TIMEOUT = 30.0
MAX_CONNECTIONS = 1000
STALE = 3.0  # seconds; an idle connection is not reused after this (the server closes them after 5)


@dataclass
class Result:
    status: int  # 0: the connection failed
    seconds: float
    json_error: bool = False  # a refusal in the error shape
    retry_after: bool = False


class Pool:
    """Keep-alive connections to one server, each carrying one request at a time."""

    def __init__(self, port: int) -> None:
        self.port, self.idle, self.open = port, [], 0

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, dict[bytes, bytes], bytes]:
        while self.idle and self.idle[0][2] < time.perf_counter() - STALE:
            self.idle.pop(0)[1].close()
            self.open -= 1
        if self.idle:
            reader, writer, _ = self.idle.pop()
        elif self.open >= MAX_CONNECTIONS:
            return 0, {}, b"client: out of connections"
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.open += 1
        try:
            head = f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
            writer.write(head.encode() + body)
            status = int((await reader.readline()).split()[1])
            headers = {}
            for _ in range(100):
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            data = await reader.readexactly(int(headers.get(b"content-length", b"0")))
        except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
            writer.close()
            self.open -= 1
            return 0, {}, b""
        if headers.get(b"connection") == b"close":
            writer.close()
            self.open -= 1
        else:
            self.idle.append((reader, writer, time.perf_counter()))
        return status, headers, data


async def call(pool: Pool, route: str, due: float, rng: random.Random) -> Result:
    path, field, _ = ROUTES[route]
    body = json.dumps({field: rng.choice(QUESTIONS)}).encode()
    try:
        status, headers, data = await asyncio.wait_for(pool.request("POST", path, body), TIMEOUT)
    except asyncio.TimeoutError:
        status, headers, data = 0, {}, b""
    result = Result(status, time.perf_counter() - due)
    if status >= 400:
        try:
            parsed = json.loads(data)
            result.json_error = parsed.get("status_code") == status and {"error", "detail"} <= set(parsed)
        except ValueError:
            pass
        result.retry_after = headers.get(b"retry-after", b"").isdigit()
    return result


async def open_loop(port: int, route: str, rate: float, seconds: float, seed: int = 0) -> tuple[list[Result], list[float]]:
    """Requests at a constant ``rate``/s (wrk2's open loop) for ``seconds``; /health probed 10 times a second meanwhile."""
    pool, probe, rng = Pool(port), Pool(port), random.Random(seed)
    start = time.perf_counter()
    tasks = []
    health = asyncio.create_task(probe_health(probe, start + seconds))
    for i in range(int(rate * seconds)):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(call(pool, route, due, rng)))
    results = await asyncio.gather(*tasks)
    return results, await health


async def probe_health(pool: Pool, until: float, interval: float = 0.1) -> list[float]:
    times = []
    for _ in range(int((until - time.perf_counter()) / interval) + 1):
        t0 = time.perf_counter()
        status, _, _ = await pool.request("GET", "/health")
        times.append(time.perf_counter() - t0 if status == 200 else float("inf"))
        await asyncio.sleep(max(0.0, interval - (time.perf_counter() - t0)))
    return times


async def burst(port: int, route: str, count: int = 200) -> list[Result]:
    pool, rng = Pool(port), random.Random(1)
    due = time.perf_counter()
    return await asyncio.gather(*(call(pool, route, due, rng) for _ in range(count)))


async def idle_then_health(port: int, idle: int = 200, probes: int = 100) -> tuple[list[float], int]:
    socks = [await asyncio.open_connection("127.0.0.1", port) for _ in range(idle)]
    times = await probe_health(Pool(port), time.perf_counter() + probes * 0.02, 0.02)
    still_open = sum(not reader.at_eof() for reader, _ in socks)
    for _, writer in socks:
        writer.close()
    return times, still_open


def ms(values: list[float], q: float) -> str:
    return f"{pct(values, q) * 1000:.0f}" if values else "-"


def summary(results: list[Result], seconds: float) -> dict:
    served = [r.seconds for r in results if r.status == 200]
    refused = [r for r in results if r.status in (429, 503)]
    return {"sent": len(results), "served": len(served), "goodput": len(served) / seconds, "p50": ms(served, 50),
            "p99": ms(served, 99), "refused": len(refused), "refused_p99": ms([r.seconds for r in refused], 99),
            "refusals_json": all(r.json_error and r.retry_after for r in refused),
            "other": sorted({r.status for r in results} - {200, 429, 503}), "p99_s": pct(served, 99) if served else 1e9}


def capacity(port: int, route: str, seconds: float, start: float) -> tuple[float, list[list]]:
    """Rates up by 1.5x while p99 <= target and >= 99 % served, then two bisection steps."""
    target = ROUTES[route][2]
    good, bad, rate, rows = 0.0, None, start, []
    for _ in range(20):
        s = summary(asyncio.run(open_loop(port, route, rate, seconds))[0], seconds)
        ok = s["p99_s"] <= target and s["served"] >= 0.99 * s["sent"]
        rows.append([route, f"{rate:.1f}", s["sent"], s["served"], f"{s['goodput']:.1f}", s["p50"], s["p99"], s["refused"],
                     s["other"] or "-", "yes" if ok else "no"])
        log(f"[capacity] {route} {rate:.1f}/s: {s}")
        good, bad = (rate, bad) if ok else (good, rate)
        if bad is not None and (bad / max(good, 1e-9) < 1.15 or len(rows) >= 8):
            break
        rate = rate * 1.5 if bad is None else (good + bad) / 2 if good else rate / 1.5
    return good, rows


def start_server(data: Path, port: int, admission: str | None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("BENCH_SERVER_PATH")]))}
    if admission:
        env["NOTELOOM_ADMISSION"] = admission
    proc = subprocess.Popen([PYTHON, "-m", "service.cli", "--data", str(data), "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
                if s.recv(12).endswith(b"200"):
                    return proc
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit("the server exited while starting")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each open-loop run of /search")
    parser.add_argument("--ask-seconds", type=float, default=30.0, help="of /ask (a few a second: longer runs for its p99)")
    parser.add_argument("--only", default="search,ask")
    parser.add_argument("--admission", default=None, help="NOTELOOM_ADMISSION for the server")
    args = parser.parse_args()
    quiet = benchlib.wait_for_quiet(max_wait=30, poll=10)
    folder = Path(tempfile.mkdtemp(prefix="noteloom-load-"))
    subprocess.run([PYTHON, "-m", "service.cli", "--data", str(folder / "data"), "ingest", str(NOTES)], check=True,
                   cwd=ROOT, stdout=subprocess.DEVNULL)
    port = free_port()
    proc = start_server(folder / "data", port, args.admission)
    meter = benchlib.LoadMeter()
    cap_rows, over_rows, burst_rows = [], [], []
    try:
        idle_times, still_open = asyncio.run(idle_then_health(port))
        for route in args.only.split(","):
            seconds = args.seconds if route == "search" else args.ask_seconds
            cap, rows = capacity(port, route, seconds, 20.0 if route == "search" else 1.0)
            cap_rows += rows
            for factor in (2, 5):
                cpu = sum(os.times()[:2])
                results, health = asyncio.run(open_loop(port, route, cap * factor, seconds, seed=factor))
                cpu = (sum(os.times()[:2]) - cpu) / seconds
                s = summary(results, seconds)
                over_rows.append([route, f"{factor}x = {cap * factor:.1f}", s["sent"], f"{s['goodput']:.1f} ({s['goodput'] / max(cap, 1e-9):.0%})",
                                  s["p99"], s["refused"], s["refused_p99"], "yes" if s["refusals_json"] else "NO",
                                  s["other"] or "-", ms(health, 99), f"{cpu:.2f}"])
            results = asyncio.run(burst(port, route))
            served = [r.seconds for r in results if r.status == 200]
            refused = [r for r in results if r.status in (429, 503)]
            burst_rows.append([route, len(served), ms(served, 50), ms(served, 99), len(refused), ms([r.seconds for r in refused], 50),
                               ms([r.seconds for r in refused], 99), "yes" if all(r.json_error and r.retry_after for r in refused) else "NO"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
    report = "\n\n".join([
        f"# load_bench\n\n{benchlib.machine_line()}; {benchlib.code_version()}\n\nbefore: {quiet}\n\nduring: {meter.stop()}",
        "## Capacity (p99 target: /search 200 ms, /ask 1 s; >= 99 % served)\n\n" + table(
            ["route", "rate/s", "sent", "served", "goodput/s", "p50 ms", "p99 ms", "refused", "other statuses", "within"], cap_rows),
        "## Overload\n\n" + table(["route", "rate/s", "sent", "goodput/s (of capacity)", "served p99 ms", "refused",
                                   "refusal p99 ms", "refusals JSON + Retry-After", "other statuses", "/health p99 ms",
                                   "generator CPUs"], over_rows),
        "## 200 simultaneous requests\n\n" + table(["route", "served", "p50 ms", "p99 ms", "refused", "refusal p50 ms",
                                                   "refusal p99 ms", "JSON + Retry-After"], burst_rows),
        f"## /health with 200 idle connections open\n\np50 {ms(idle_times, 50)} ms, p99 {ms(idle_times, 99)} ms, "
        f"{sum(t == float('inf') for t in idle_times)} failed of {len(idle_times)}; {still_open} idle connections still open after",
    ])
    print(report)
    benchlib.RESULTS.mkdir(parents=True, exist_ok=True)
    (benchlib.RESULTS / "load_bench.md").write_text(report + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
