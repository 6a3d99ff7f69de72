"""Child process for the Ray crash tests: join the test's Ray (its address is the
third argument), say 'ready', ingest through it in small batches, say 'done'."""

import sys

from ingest import ChunkSettings, Ingestor
from ingest.ray_engine import RayEngine
from retrieval import Notebook
from runtime import HashingEmbedder

data, folder, address = sys.argv[1], sys.argv[2], sys.argv[3]
engine = RayEngine(address, files_per_batch=2, stall_seconds=120)
engine.connect()
nb = Notebook(data, embedder=HashingEmbedder())
print("ready", flush=True)
Ingestor(nb, ChunkSettings.of("recursive", max_tokens=64), batch_chunks=4, engine=engine).ingest_paths([folder], prune=True)
print("done", flush=True)
