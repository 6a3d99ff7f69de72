"""The Qdrant backend on Qdrant's own engine in process (``engine="edge"``,
qdrant-edge-py): kill -9 during an ingest, one process per folder, and its
setting. The contract suite (test_backend_contract.py), and the parity with
SQLite + FAISS and the crash at every write (test_qdrant.py) run on it too."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from retrieval import Counts, StorageError
from retrieval.qdrant_backend import QdrantBackend
from retrieval.qdrant_store import ENGINES
from service import wiring
from service.settings import QDRANT_ENGINES, SettingsError, load_settings
from tests.test_backend_contract import ALPHA, BETA, put
from tests.test_qdrant import ROOT, kill_9_during_ingests


def test_kill_9_during_an_ingest_into_the_edge_engine(tmp_path):
    kill_9_during_ingests(tmp_path, "edge")


def test_what_a_write_acknowledged_survives_a_kill_9_without_close(tmp_path):
    """No flush, no close: the shards' write-ahead logs replay the writes at the next open."""
    code = ("import os, sys; from retrieval.qdrant_backend import QdrantBackend; "
            "from tests.test_backend_contract import ALPHA, BETA, put; "
            "b = QdrantBackend(path=sys.argv[1], engine='edge'); put(b, ALPHA, BETA); os.kill(os.getpid(), 9)")
    child = subprocess.run([sys.executable, "-c", code, str(tmp_path / "q")], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == -9, child.stderr
    backend = QdrantBackend(path=tmp_path / "q", engine="edge")
    try:
        assert backend.counts() == Counts(2, 4) and backend.check().ok
        assert backend.vector_search(ALPHA[1][0].vector, 1)[0][0] == ALPHA[1][0].id
    finally:
        backend.close()


def test_a_folder_opens_only_with_the_engine_that_wrote_it(tmp_path):
    for writer, reader in (("client", "edge"), ("edge", "client")):
        folder = tmp_path / writer
        backend = QdrantBackend(path=folder, engine=writer)
        put(backend, ALPHA)
        backend.close()
        with pytest.raises(StorageError, match=f"^Qdrant folder .* holds the other engine's data than '{reader}'"):
            QdrantBackend(path=folder, engine=reader)


def test_bad_edge_configurations_are_refused():
    with pytest.raises(ValueError, match="engine must be one of client, edge"):
        QdrantBackend(path="/tmp/x", engine="rust")
    with pytest.raises(ValueError, match="edge engine opens a folder"):
        QdrantBackend(path=":memory:", engine="edge")
    with pytest.raises(ValueError, match="edge engine opens a folder"):
        QdrantBackend(url="http://127.0.0.1:9", engine="edge")


def test_settings_choose_the_edge_engine(tmp_path):
    nb = wiring.notebook(load_settings({"NOTELOOM_BACKEND": "qdrant", "NOTELOOM_QDRANT_ENGINE": "edge"}), tmp_path)
    try:
        assert nb.backend.store.engine == "edge" and (tmp_path / "qdrant" / "edge").is_dir()
        assert nb.counts() == Counts(0, 0)
    finally:
        nb.close()
    assert load_settings({}).qdrant_engine == "client"
    assert QDRANT_ENGINES == ENGINES  # the setting's choices are the store's
    with pytest.raises(SettingsError, match="NOTELOOM_QDRANT_ENGINE"):
        load_settings({"NOTELOOM_QDRANT_ENGINE": "server"})


def test_closing_one_reader_leaves_the_other_open(tmp_path):
    first, second = (QdrantBackend(path=tmp_path / "q", engine="edge") for _ in range(2))
    put(first, ALPHA, BETA)
    assert second.counts() == Counts(2, 4)
    first.close()
    assert second.known_source("notes/alpha.md") is not None
    second.close()
