"""MCP tool calls against the HTTP API on the same data: latency of ``search`` and
``ask`` through ``noteloom mcp`` (the SDK's client over stdio), through ``noteloom
serve`` (httpx, one keep-alive connection), and in this process with no transport
(``NotebookTools``, the MCP tools' bodies), one client at a time.

The data folder is samples/notes ingested with ``--model`` (default the real
all-MiniLM-L6-v2). Each path gets ``--warmup`` calls, then ``--calls`` timed calls
per tool, cycling through the queries. Results go to bench/results/mcp_bench.md.

    .venv/bin/python bench/mcp_bench.py
    .venv/bin/python bench/mcp_bench.py --calls 20 --model hashing   # quick
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import benchlib
from benchlib import NOTES, PYTHON, ROOT, log

QUERIES = ["LoRA rank for a face", "how big should chunks be", "classifier-free guidance scale", "negative prompt",
           "hybrid search with citations", "textual inversion tokens", "sentence splitting", "DDIM scheduler steps"]


def timed(call, calls: int, warmup: int) -> dict[str, list[float]]:
    out = {}
    for tool in ("search", "ask"):
        for i in range(warmup):
            call(tool, QUERIES[i % len(QUERIES)])
        times = []
        for i in range(calls):
            t0 = time.perf_counter()
            call(tool, QUERIES[i % len(QUERIES)])
            times.append((time.perf_counter() - t0) * 1000)
        out[tool] = times
    return out


def direct(data: Path, calls: int, warmup: int) -> dict[str, list[float]]:
    from retrieval import Notebook
    from service.mcp import NotebookTools

    nb = Notebook(data)
    tools = NotebookTools(nb)
    try:
        return timed(lambda tool, q: tools.search(q, k=5) if tool == "search" else tools.ask(q), calls, warmup)
    finally:
        nb.close()


def over_mcp(data: Path, calls: int, warmup: int) -> dict[str, list[float]]:
    import anyio
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    env = {"PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    params = StdioServerParameters(command=PYTHON, args=["-m", "service.cli", "--data", str(data), "mcp"], env=env, cwd=str(ROOT))
    out: dict[str, list[float]] = {}

    async def run() -> None:
        async with Client(params, read_timeout_seconds=120) as client:
            for tool in ("search", "ask"):
                args = (lambda q: {"query": q, "k": 5}) if tool == "search" else (lambda q: {"question": q})
                times = []
                for i in range(warmup + calls):
                    t0 = time.perf_counter()
                    result = await client.call_tool(tool, args(QUERIES[i % len(QUERIES)]))
                    if result.is_error:
                        raise RuntimeError(result.content[0].text)
                    if i >= warmup:
                        times.append((time.perf_counter() - t0) * 1000)
                out[tool] = times

    anyio.run(run)
    return out


def over_http(data: Path, calls: int, warmup: int) -> dict[str, list[float]]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([PYTHON, "-m", "service.cli", "--data", str(data), "serve", "--port", str(port)], cwd=ROOT, env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            benchlib.wait_healthy(client, proc, 300)

            def call(tool: str, q: str) -> None:
                body = {"query": q, "k": 5} if tool == "search" else {"question": q}
                client.post(f"/{tool}", json=body).raise_for_status()

            return timed(call, calls, warmup)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--output", default=str(benchlib.RESULTS / "mcp_bench.md"))
    args = parser.parse_args()
    from ingest import Ingestor
    from retrieval import Notebook

    quiet = benchlib.wait_for_quiet()
    log(quiet)
    meter = benchlib.LoadMeter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mcp-bench-") as tmp:
        data = Path(tmp) / "data"
        nb = Notebook(data, embedding_model=args.model)
        Ingestor(nb).ingest_paths([NOTES])
        nb.close()
        for name, run in (("in process (NotebookTools, no transport)", direct), ("MCP over stdio (noteloom mcp)", over_mcp),
                          ("HTTP (noteloom serve)", over_http)):
            log(f"{name} ...")
            result = run(data, args.calls, args.warmup)
            for tool, ms in result.items():
                rows.append([name, tool, len(ms), f"{benchlib.pct(ms, 50):.1f}", f"{benchlib.pct(ms, 99):.1f}", f"{max(ms):.1f}"])
                log(rows[-1])
    report = "\n".join(["# MCP against HTTP", "", benchlib.machine_line(), f"embedder: {args.model}; samples/notes", quiet,
                        f"run: {meter.stop()}", "",
                        benchlib.table(["path", "tool", "calls", "p50 ms", "p99 ms", "max ms"], rows), ""])
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
