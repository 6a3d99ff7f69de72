"""Child process for the crash test: load the model, say 'ready', ingest."""

import sys

from ingest import ChunkSettings, Ingestor
from retrieval import Notebook

data, folder = sys.argv[1], sys.argv[2]
nb = Notebook(data)
nb.embed(["warm up"])
print("ready", flush=True)
Ingestor(nb, ChunkSettings.of("recursive", max_tokens=64), batch_chunks=4).ingest_paths([folder], prune=True)
print("done", flush=True)
