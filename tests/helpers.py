"""Small builders shared by tests (real files, no mocks)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent
BASE_ENV = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def cpu_seconds(fn, *args, **kwargs):
    """``fn``'s result and the CPU seconds of this process (all its threads) it
    took: load from other processes stretches wall time, not the work done."""
    t0 = time.process_time()
    out = fn(*args, **kwargs)
    return out, time.process_time() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(data, env: dict[str, str], command: list[str] | None = None, seconds: float = 120,
          extra: Sequence[str] = ()) -> tuple[subprocess.Popen, str]:
    """``noteloom --data DATA serve [EXTRA...]`` (or ``command`` standing for ``noteloom``)
    on a free port of 127.0.0.1, once /health answers: (process, base URL)."""
    import httpx
    import pytest

    port = free_port()
    command = command or [sys.executable, "-m", "service.cli"]
    proc = subprocess.Popen([*command, "--data", str(data), "serve", "--port", str(port), *extra],
                            env={**BASE_ENV, **env}, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    pytest.fail("server did not start: " + proc.stderr.read())


def stop(proc: subprocess.Popen, seconds: float = 20) -> None:
    """SIGTERM, and SIGKILL if the server is still there after ``seconds``."""
    proc.terminate()
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=seconds)


def pdf_from_objects(objects: list[bytes]) -> bytes:
    """A PDF file of numbered objects (1 is the catalog) with a correct xref table."""
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def make_pdf(lines: list[str]) -> bytes:
    """A minimal valid one-page PDF whose text layer holds ``lines``."""
    ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({escaped}) Tj T*")
    ops.append("ET")
    stream = zlib.compress("\n".join(ops).encode("latin-1"))
    return pdf_from_objects([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ])


def check_store_consistent(nb) -> dict:
    """Every invariant of a notebook's data folder; returns counts."""
    db = nb.store.db
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    docs = {r[0]: r[1] for r in db.execute("SELECT id, text FROM documents")}
    chunk_rows = db.execute("SELECT id, doc_id, start, end, text FROM chunks").fetchall()
    with_chunks = {r[1] for r in chunk_rows}
    assert set(docs) == with_chunks, "a document without chunks, or chunks without a document"
    for cid, doc_id, start, end, text in chunk_rows:
        assert docs[doc_id][start:end] == text
    fts = db.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0]
    assert fts == len(chunk_rows), f"FTS has {fts} rows for {len(chunk_rows)} chunks"
    index = nb.index()
    assert index.count == len(chunk_rows), f"index has {index.count} vectors for {len(chunk_rows)} chunks"
    if index.kind == "flat":
        import faiss

        assert set(faiss.vector_to_array(index.index.id_map).tolist()) == {r[0] for r in chunk_rows}
    return {"documents": len(docs), "chunks": len(chunk_rows)}
