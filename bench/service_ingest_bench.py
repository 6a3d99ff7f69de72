"""/health and /search latency on a real server (127.0.0.1) while it ingests.

Scenarios, each sampled by one client that alternates ``GET /health`` and
``POST /search`` with a short pause (latency, not throughput):

- idle;
- a pathological 40 KB note (``# # # … x``, quadratic for the loaders of the
  day) uploaded, until it is answered;
- a 20 MB generated markdown upload (parsed and chunked in a worker process,
  embedded and stored in the server), for at most ``--window`` seconds;
- ``noteloom ingest`` of a generated folder in another process against the same
  data folder, for at most ``--window`` seconds.

A server whose upload is still running when its window ends is stopped (the
write protocol is crash-safe) and a fresh one serves the next scenario. The
issue's target is p99 <= 100 ms. Results go to bench/results/service_ingest_bench.md.

    .venv/bin/python bench/service_ingest_bench.py
    .venv/bin/python bench/service_ingest_bench.py --upload-mb 2 --notes 200 --window 30   # quick
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import benchlib
from benchlib import PYTHON, ROOT, log

QUERIES = ["rim light around the subject", "LoRA rank for a face", "negative prompt", "chunk overlap", "lens focal length"]
WORDS = ("light lens shadow portrait colour prompt model sampler noise seed chunk token budget overlap note folder "
         "index search vector sentence paragraph heading camera aperture exposure contrast texture style").split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def generated_markdown(size: int, seed: int) -> str:
    rng = random.Random(seed)
    parts, total, n = [], 0, 0
    while total < size:
        n += 1
        sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18))).capitalize() + "." for _ in range(rng.randint(3, 8))]
        block = f"## Section {n}\n\n" + " ".join(sentences) + "\n\n"
        parts.append(block)
        total += len(block)
    return "".join(parts)[:size]


def pathological_markdown(size: int = 40_000) -> str:
    return ("# " * (size // 2))[: size - 1] + "x"


class Server:
    """``noteloom serve`` on 127.0.0.1 in a subprocess; stopped on exit (killed if it lingers)."""

    def __init__(self, data: Path) -> None:
        import httpx

        self.port = free_port()
        self.proc = subprocess.Popen([PYTHON, "-m", "service.cli", "--data", str(data), "serve", "--port", str(self.port)],
                                     cwd=ROOT, stderr=subprocess.DEVNULL)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=600)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if self.client.get("/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("the server did not start within 180 s")

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # a graceful shutdown waits for a running upload
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()


def sample(server: Server, busy, *, count: int, window: float, gap: float) -> dict[str, list[float]]:
    """Alternate /health and /search until ``busy()`` is false, ``count`` pairs or ``window`` s."""
    times: dict[str, list[float]] = {"/health": [], "/search": []}
    deadline = time.monotonic() + window
    for i in range(count):
        if not busy() or time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        assert server.client.get("/health", timeout=60).status_code == 200
        times["/health"].append(time.perf_counter() - t0)
        time.sleep(gap)
        t0 = time.perf_counter()
        r = server.client.post("/search", json={"query": QUERIES[i % len(QUERIES)], "k": 5}, timeout=60)
        assert r.status_code == 200, r.text
        times["/search"].append(time.perf_counter() - t0)
        time.sleep(gap)
    return times


def in_background(fn) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def run() -> None:
        t0 = time.perf_counter()
        try:
            box["result"] = fn()
        except Exception as exc:  # noqa: BLE001 - reported, not raised: the server may be stopped under it
            box["result"] = f"{type(exc).__name__}"
        box["seconds"] = time.perf_counter() - t0

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def upload(server: Server, name: str, text: str) -> str:
    r = server.client.post("/documents", files={"file": (name, text.encode(), "text/markdown")})
    body = r.json()
    return f"{r.status_code} {body.get('status') or body.get('error')}" + (f", {body['chunks']} chunks" if "chunks" in body else "")


def outcome(thread: threading.Thread, box: dict) -> str:
    if thread.is_alive():
        return "still running at the end of the window"
    return f"{box['result']} in {box['seconds']:.1f} s"


def rows_for(scenario: str, times: dict[str, list[float]], note: str) -> list[list[str]]:
    rows = []
    for endpoint, values in times.items():
        if not values:
            rows.append([scenario, endpoint, "0", "-", "-", "-", note])
            continue
        ms = [v * 1000 for v in values]
        rows.append([scenario, endpoint, str(len(ms)), f"{benchlib.pct(ms, 50):.1f}", f"{benchlib.pct(ms, 99):.1f}",
                     f"{max(ms):.1f}", note])
    return rows


def write_folder(folder: Path, notes: int, note_kb: int) -> int:
    folder.mkdir(parents=True)
    total = 0
    for i in range(notes):
        text = f"# Note {i}\n\n" + generated_markdown(note_kb * 1024, seed=1000 + i)
        (folder / f"note-{i:05d}.md").write_text(text, encoding="utf-8")
        total += len(text)
    return total


def run(args, tmp: Path) -> list[list[str]]:
    data = tmp / "data"
    seeded = subprocess.run([PYTHON, "-m", "service.cli", "--data", str(data), "ingest", str(benchlib.NOTES)],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    if seeded.returncode:
        raise RuntimeError(f"seeding the data folder failed:\n{seeded.stderr[-2000:]}")
    rows: list[list[str]] = []
    with Server(data) as server:
        log("[idle]")
        rows += rows_for("idle", sample(server, lambda: True, count=args.idle_pairs, window=args.window, gap=args.gap), "")
        log("[pathological 40 KB note]")
        thread, box = in_background(lambda: upload(server, "hashes.md", pathological_markdown()))
        times = sample(server, thread.is_alive, count=100_000, window=args.window, gap=args.gap)
        thread.join(args.window)
        rows += rows_for("40 KB `# # # … x` upload", times, outcome(thread, box))
        log(f"[{args.upload_mb} MB upload]")
        text = generated_markdown(args.upload_mb * 1024 * 1024, seed=7)
        thread, box = in_background(lambda: upload(server, "big.md", text))
        times = sample(server, thread.is_alive, count=100_000, window=args.window, gap=args.gap)
        rows += rows_for(f"{args.upload_mb} MB upload", times, outcome(thread, box))
    folder = tmp / "folder"
    size = write_folder(folder, args.notes, args.note_kb)
    with Server(data) as server:
        log(f"[folder ingest: {args.notes} notes, {size / 2**20:.1f} MB]")
        t0 = time.perf_counter()
        cli = subprocess.Popen([PYTHON, "-m", "service.cli", "--data", str(data), "ingest", str(folder)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        times = sample(server, lambda: cli.poll() is None, count=100_000, window=args.window, gap=args.gap)
        if cli.poll() is None:
            cli.kill()
            note = f"killed at the end of the {args.window:.0f} s window"
        else:
            note = f"{cli.stdout.read().strip()} ({time.perf_counter() - t0:.1f} s)"
        cli.wait(30)
        rows += rows_for(f"`noteloom ingest` of {args.notes} notes ({size / 2**20:.1f} MB)", times, note)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upload-mb", type=int, default=20)
    parser.add_argument("--notes", type=int, default=2000, help="notes in the folder ingested by the CLI")
    parser.add_argument("--note-kb", type=int, default=4)
    parser.add_argument("--window", type=float, default=180, help="longest sampling per scenario, seconds")
    parser.add_argument("--idle-pairs", type=int, default=300)
    parser.add_argument("--gap", type=float, default=0.02, help="pause between requests, seconds")
    parser.add_argument("--max-wait", type=float, default=300, help="longest wait for a quiet machine, seconds")
    args = parser.parse_args()
    lines = benchlib.start("service_ingest_bench", args.max_wait)
    meter = benchlib.LoadMeter()
    tmp = Path(tempfile.mkdtemp(prefix="noteloom-service-bench-"))
    try:
        rows = run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines += [benchlib.table(["while", "endpoint", "requests", "p50 ms", "p99 ms", "max ms", "background"], rows), "",
              f"Run: {meter.stop()}. Target: p99 <= 100 ms."]
    text = "\n".join(lines)
    print(text)
    log(f"written to {benchlib.write_results('service_ingest_bench', text)}")


if __name__ == "__main__":
    main()
