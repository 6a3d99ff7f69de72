"""Child process for the Ray crash tests: join the test's Ray (its address is the
third argument), start the actor pool, say 'ready', ingest through it in small
batches, each embedded slowly enough that the kill lands mid-ingest, say 'done'."""

import sys
import time

from ingest import ChunkSettings, Ingestor
from ingest.ray_engine import RayEngine
from retrieval import Notebook
from runtime import HashingEmbedder


class SlowHashing:
    """HashingEmbedder's vectors, a tenth of a second per batch."""

    def __call__(self, texts):
        time.sleep(0.1)
        return HashingEmbedder().embed_batch(texts)


data, folder, address = sys.argv[1], sys.argv[2], sys.argv[3]
engine = RayEngine(address, files_per_batch=2, stall_seconds=120, embedder=SlowHashing())
engine.warm()
nb = Notebook(data, embedder=HashingEmbedder())
print("ready", flush=True)
Ingestor(nb, ChunkSettings.of("recursive", max_tokens=64), batch_chunks=4, engine=engine).ingest_paths([folder], prune=True)
print("done", flush=True)
