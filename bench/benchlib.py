"""Shared helpers for the on-demand benchmarks (rag_bench, prompt_bench,
imagegen_bench): environment, waiting for a quiet machine, load accounting,
percentiles and markdown tables written to bench/results/."""

from __future__ import annotations

import os

# Before torch / faiss / tokenizers load: passive OpenMP threads, nothing from a hub.
if os.environ.get("BENCH_OMP_UNSET") != "1":  # a worker that must run with libgomp's default policy
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Iterable, Sequence  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CORPUS = ROOT / "bench" / "corpus" / "prose.txt"
NOTES = ROOT / "samples" / "notes"
QA = ROOT / "samples" / "qa.json"
PYTHON = sys.executable

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Processes that would distort a timing: other benchmarks and test runs.
HEAVY = re.compile(r"chunkers_bench|pytest|rag_bench|prompt_bench|imagegen_bench")


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def _own_pids() -> set[int]:
    """This process, its ancestors and its descendants (never counted as 'other')."""
    own = {os.getpid()}
    pid = os.getpid()
    while pid > 1:  # ancestors
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        own.add(pid)
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    stack = [os.getpid()]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in own:
                own.add(child)
                stack.append(child)
    return own


def heavy_processes() -> list[str]:
    """Other benchmark / pytest processes now running (command lines, shortened)."""
    own = _own_pids()
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in own:
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if cmd and HEAVY.search(cmd) and "grep" not in cmd.split()[0]:
            out.append(f"{entry.name}: {cmd[:110]}")
    return out


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def busy_cpus(seconds: float = 2.0) -> float:
    """CPUs busy on the whole machine over ``seconds`` (from /proc/stat)."""
    def snap():
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields[:8]), idle
    t0, i0 = snap()
    time.sleep(seconds)
    t1, i1 = snap()
    total = (t1 - t0) or 1
    return (os.cpu_count() or 1) * (1 - (i1 - i0) / total)


def wait_for_quiet(max_wait: float = 600, poll: float = 30, busy_limit: float = 0.5) -> str:
    """Wait until no other benchmark or pytest runs and the machine is nearly idle
    (< ``busy_limit`` CPUs busy), polling every ``poll`` s for at most ``max_wait`` s.
    Returns a line describing the load when the wait ended (proceeds anyway after
    ``max_wait``, saying so)."""
    if os.environ.get("BENCH_NO_WAIT"):
        return f"no wait (BENCH_NO_WAIT); load average {loadavg()}"
    started = time.monotonic()
    while True:
        heavy = heavy_processes()
        busy = busy_cpus(2.0)
        waited = time.monotonic() - started
        if not heavy and busy < busy_limit:
            return f"quiet after {waited:.0f}s wait: {busy:.2f} CPUs busy, load average {loadavg()}"
        if waited >= max_wait:
            return (f"NOT QUIET after {waited:.0f}s wait, proceeding: {busy:.2f} CPUs busy, load average {loadavg()}, "
                    f"other heavy processes: {heavy or 'none'}")
        log(f"[wait] {busy:.2f} CPUs busy, load {loadavg()}, heavy: {heavy[:3]}; waiting {poll:.0f}s")
        time.sleep(poll)


class LoadMeter:
    """CPU time used by *other* processes while a section ran: machine busy time
    (from /proc/stat) minus this process's and its reaped children's CPU time."""

    def __init__(self) -> None:
        self.start()

    @staticmethod
    def _machine() -> float:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        busy = sum(fields[:8]) - fields[3] - fields[4]
        return busy / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def start(self) -> None:
        self.t0, self.m0, self.o0, self.l0 = time.monotonic(), self._machine(), self._own(), loadavg()

    def stop(self, extra_own_cpu: float = 0.0) -> str:
        wall = time.monotonic() - self.t0
        other = max(0.0, (self._machine() - self.m0) - (self._own() - self.o0) - extra_own_cpu)
        return (f"{wall:.0f}s; other processes used {other / max(wall, 1e-9):.2f} of {os.cpu_count()} CPUs; "
                f"load average {self.l0} -> {loadavg()}")


def wait_healthy(client, process: subprocess.Popen, seconds: float, pause: float = 0.25) -> None:
    """Poll ``GET /health`` on an httpx ``client`` until it answers 200; RuntimeError
    when the server ``process`` exits first or ``seconds`` pass."""
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            if client.get("/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start within {seconds:g} s (exit status {process.poll()})")
        time.sleep(pause)


def pct(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


def median(values: Sequence[float]) -> float:
    return pct(values, 50)


def best_of(fn, reps: int) -> tuple[float, float, list[float]]:
    """Best and median wall time of ``reps`` calls of ``fn``, and all the times."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), median(times), times


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def machine_line() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        model = "?"
    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), "0")
    return f"{os.cpu_count()} CPUs ({model}), {int(mem) / 2**20:.1f} GiB RAM, Python {sys.version.split()[0]}"


def code_version() -> str:
    """A short hash of the library's sources and the newest file: the code under
    test changes while benchmarks run, so every report names what it measured."""
    import hashlib

    files = sorted(p for pkg in ("chunkers", "ingest", "retrieval", "imagegen", "service") for p in (ROOT / pkg).rglob("*.py"))
    digest = hashlib.sha1()
    for p in files:
        digest.update(p.relative_to(ROOT).as_posix().encode() + b"\0" + p.read_bytes())
    newest = max(files, key=lambda p: p.stat().st_mtime)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(newest.stat().st_mtime))
    return f"library sources {digest.hexdigest()[:12]} (newest: {newest.relative_to(ROOT)}, {stamp})"


def default_threads() -> str:
    """What the library's runtime.cpu_threads() gives here (no torch import)."""
    try:
        from runtime import cpu_threads

        return str(cpu_threads())
    except Exception as exc:  # noqa: BLE001 - the library may change under us
        return f"? ({type(exc).__name__})"


def header(name: str, quiet: str) -> list[str]:
    return [
        f"# {name}",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}; {machine_line()}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, "
        f"NOTELOOM_THREADS={os.environ.get('NOTELOOM_THREADS', '(unset)')}, so torch/FAISS threads = {default_threads()}; "
        f"{code_version()}.",
        f"Machine at the start: {quiet}.",
        "",
    ]


def start(name: str, max_wait: float) -> list[str]:
    """Wait for a quiet machine, log how quiet, and begin the report with ``header``."""
    quiet = wait_for_quiet(max_wait=max_wait)
    log(f"[start] {quiet}")
    return header(name, quiet)


def sections(arg: str) -> list[str]:
    """The comma-separated section names of an ``--only`` argument."""
    return [s.strip() for s in arg.split(",") if s.strip()]


def write_results(name: str, text: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(text.rstrip() + "\n", encoding="utf-8")
    return path


def run_json(args: Sequence[str], env: dict[str, str] | None = None, timeout: float = 900) -> dict:
    """Run a worker subprocess that prints one JSON object as its last stdout line."""
    import json

    proc = subprocess.run([PYTHON, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def paragraphs(text: str, min_chars: int = 1, max_chars: int | None = None) -> list[str]:
    out = []
    for p in re.split(r"\n\s*\n", text):
        p = p.strip()
        if len(p) >= min_chars and (max_chars is None or len(p) <= max_chars):
            out.append(p)
    return out
