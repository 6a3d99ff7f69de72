"""Watch mode: how soon a saved note is searchable, and what an idle watcher costs.

- latency: ``noteloom watch`` (its own process) watches a folder of ``--notes`` (each size)
  notes; ``--edits`` times, one note gets a new unique word (in-place writes and
  saves by rename, alternately) and this process polls lexical search on the same
  data folder until the word is found: p50, p99 and max from the write to the hit.
- idle: a folder of ``--idle-files`` notes (in folders of 100) is caught up by the
  watcher's first scan; then its CPU time over ``--idle-seconds`` with nothing
  changing, its memory, and how long a restart's catch-up scan takes when nothing
  changed (every file only stat'ed).

The embedder is ``hashing`` unless ``--model`` names one, so the figures are the
watcher's and the ingest's, not the model's. Results go to bench/results/watch_bench.md.

    .venv/bin/python bench/watch_bench.py
    .venv/bin/python bench/watch_bench.py --edits 20 --idle-files 1000 --idle-seconds 5   # quick
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import benchlib
from benchlib import PYTHON, ROOT, log

WORDS = "light lens shadow portrait colour prompt model sampler noise seed chunk token budget overlap note folder".split()


def note_text(i: int, extra: str = "") -> str:
    body = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(60))
    return f"# Note {i}\n\n{body}.\n\n{extra}\n"


class WatcherProcess:
    """``noteloom watch`` in a process, its stderr read on a thread."""

    def __init__(self, data: Path, folder: Path, model: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "NOTELOOM_EMBEDDING_MODEL": model}
        self.proc = subprocess.Popen([PYTHON, "-m", "service.cli", "--data", str(data), "watch", str(folder)],
                                     cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        self.started = time.monotonic()
        self.caught_up = threading.Event()
        self.catch_up_line = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            if "caught up:" in line:
                self.catch_up_line = line.strip()
                self.caught_up.set()

    def wait_caught_up(self, seconds: float = 1800) -> float:
        if not self.caught_up.wait(seconds):
            raise RuntimeError(f"the watcher did not catch up within {seconds:g} s (exit {self.proc.poll()})")
        return time.monotonic() - self.started

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def rss_mb(self) -> float:
        line = next(x for x in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines() if x.startswith("VmRSS"))
        return int(line.split()[1]) / 1024

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def reader(data: Path):
    from retrieval import Notebook

    return Notebook(data)


def latency(tmp: Path, notes: int, edits: int, model: str) -> dict:
    folder, data = tmp / "lat-notes", tmp / "lat-data"
    folder.mkdir(parents=True)
    for i in range(notes):
        (folder / f"note-{i:04d}.md").write_text(note_text(i), encoding="utf-8")
    watcher = WatcherProcess(data, folder, model)
    try:
        watcher.wait_caught_up()
        nb = reader(data)
        times = []
        for e in range(edits):
            word = f"edit{e:04d}marker"
            path = folder / f"note-{e % 10:04d}.md"
            text = note_text(e % 10, f"The change is {word}.")
            t0 = time.perf_counter()
            if e % 2:
                temp = path.with_name(f".{path.name}.tmp")
                temp.write_text(text, encoding="utf-8")
                os.replace(temp, path)
            else:
                path.write_text(text, encoding="utf-8")
            deadline = t0 + 30
            while not nb.search(word, k=1, mode="lexical"):
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"edit {e} not searchable within 30 s")
                time.sleep(0.002)
            times.append(time.perf_counter() - t0)
        nb.close()
    finally:
        watcher.stop()
    ms = [t * 1000 for t in times]
    return {"notes": notes, "edits": edits, "p50": benchlib.pct(ms, 50), "p99": benchlib.pct(ms, 99), "max": max(ms)}


def idle(tmp: Path, files: int, seconds: float, model: str) -> dict:
    folder, data = tmp / "idle-notes", tmp / "idle-data"
    for i in range(files):
        sub = folder / f"f{i // 100:03d}"
        if i % 100 == 0:
            sub.mkdir(parents=True)
        (sub / f"n{i:05d}.md").write_text(f"# Note {i}\n\nA short note number {i} about {WORDS[i % len(WORDS)]}.\n", encoding="utf-8")
    time.sleep(2.5)  # past the 'settled' window, so the first scan stamps every file
    watcher = WatcherProcess(data, folder, model)
    try:
        first = watcher.wait_caught_up(3600)
        first_line = watcher.catch_up_line
        time.sleep(2.0)  # let the first batch's aftermath settle
        cpu0, t0 = watcher.cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        cpu, wall = watcher.cpu_seconds() - cpu0, time.monotonic() - t0
        rss = watcher.rss_mb()
    finally:
        watcher.stop()
    again = WatcherProcess(data, folder, model)  # a restart with nothing changed: every file only stat'ed
    try:
        restart = again.wait_caught_up()
        restart_line = again.catch_up_line
    finally:
        again.stop()
    return {"files": files, "first": first, "first_line": first_line, "cpu": cpu, "wall": wall, "rss": rss,
            "restart": restart, "restart_line": restart_line}


def scan_seconds(line: str) -> str:
    found = re.search(r"in ([0-9.]+)s", line)
    return found.group(1) if found else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notes", default="200,10000", help="sizes of the watched folder, comma-separated")
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--idle-files", type=int, default=10_000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--model", default="hashing", help="embedding model (default: hashing, no model)")
    parser.add_argument("--output", default=str(benchlib.RESULTS / "watch_bench.md"))
    args = parser.parse_args()
    quiet = benchlib.wait_for_quiet()
    log(quiet)
    meter = benchlib.LoadMeter()
    with tempfile.TemporaryDirectory(prefix="watch-bench-") as tmp:
        lats = []
        for n, notes in enumerate(int(x) for x in args.notes.split(",")):
            lats.append(latency(Path(tmp) / f"lat{n}", notes, args.edits, args.model))
            log(f"latency: {lats[-1]}")
        idl = idle(Path(tmp), args.idle_files, args.idle_seconds, args.model)
        log(f"idle: {idl}")
    load = meter.stop()
    report = "\n".join([
        "# Watch mode", "", benchlib.machine_line(), f"embedder: {args.model}; debounce: the default setting", quiet, f"run: {load}", "",
        "## From a write to a search hit", "",
        benchlib.table(["notes watched", "edits", "p50 ms", "p99 ms", "max ms"],
                       [[lat["notes"], lat["edits"], f"{lat['p50']:.0f}", f"{lat['p99']:.0f}", f"{lat['max']:.0f}"] for lat in lats]),
        "", "## An idle watcher", "",
        benchlib.table(["files", "first catch-up (process start to ready)", "idle CPU", "RSS", "restart catch-up, nothing changed"],
                       [[idl["files"], f"{idl['first']:.1f} s (scan {scan_seconds(idl['first_line'])} s)",
                         f"{idl['cpu']:.2f} s over {idl['wall']:.0f} s ({100 * idl['cpu'] / idl['wall']:.2f} %)",
                         f"{idl['rss']:.0f} MB", f"{idl['restart']:.1f} s (scan {scan_seconds(idl['restart_line'])} s)"]]),
        "", f"first scan: {idl['first_line']}", f"restart scan: {idl['restart_line']}", ""])
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
