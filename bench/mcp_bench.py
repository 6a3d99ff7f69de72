"""MCP tool calls against the HTTP API on the same data: latency of ``search`` and
``ask`` through ``noteloom mcp`` (the SDK's client over stdio), through ``noteloom
serve`` (httpx, one keep-alive connection), and in this process with no transport
(``NotebookTools``, the MCP tools' bodies), one call at a time. The three paths take
turns call by call, so load from other processes falls on them alike.

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


def over_http(data: Path):
    """``noteloom serve`` on a free port, once /health answers: (process, base URL)."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([PYTHON, "-m", "service.cli", "--data", str(data), "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stderr=subprocess.DEVNULL)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        benchlib.wait_healthy(client, proc, 300)
    return proc, f"http://127.0.0.1:{port}"


def interleaved(data: Path, calls: int, warmup: int) -> dict[tuple[str, str], list[float]]:
    """Each round makes the same call by every path, one after the other, so that load
    from other processes falls on all of them alike."""
    import anyio
    import httpx
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    from retrieval import Notebook
    from service.mcp import NotebookTools

    env = {"PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    params = StdioServerParameters(command=PYTHON, args=["-m", "service.cli", "--data", str(data), "mcp"], env=env, cwd=str(ROOT))
    nb = Notebook(data)
    tools = NotebookTools(nb)
    proc, base = over_http(data)
    out: dict[tuple[str, str], list[float]] = {}

    async def run() -> None:
        async with Client(params, read_timeout_seconds=120) as mcp, httpx.AsyncClient(base_url=base, timeout=120) as http:
            async def by_mcp(tool: str, body: dict) -> None:
                result = await mcp.call_tool(tool, body)
                if result.is_error:
                    raise RuntimeError(result.content[0].text)

            async def by_http(tool: str, body: dict) -> None:
                (await http.post(f"/{tool}", json=body)).raise_for_status()

            async def in_process(tool: str, body: dict) -> None:
                getattr(tools, tool)(**body)

            paths = {PATHS[0]: in_process, PATHS[1]: by_mcp, PATHS[2]: by_http}
            for tool in ("search", "ask"):
                for i in range(warmup + calls):
                    query = QUERIES[i % len(QUERIES)]
                    body = {"query": query, "k": 5} if tool == "search" else {"question": query}
                    for name, call in paths.items():
                        t0 = time.perf_counter()
                        await call(tool, body)
                        if i >= warmup:
                            out.setdefault((name, tool), []).append((time.perf_counter() - t0) * 1000)

    try:
        anyio.run(run)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        nb.close()
    return out


PATHS = ("in process (NotebookTools, no transport)", "MCP over stdio (noteloom mcp)", "HTTP (noteloom serve)")


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
        result = interleaved(data, args.calls, args.warmup)
        for tool in ("search", "ask"):
            for name in PATHS:
                ms = result[(name, tool)]
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
