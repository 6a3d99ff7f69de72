"""The notebook: the front door to a store of notes. It holds a ``Backend``
(by default SQLite + FAISS in one data folder, see ``sqlite_faiss``), the
embedder, a ``Searcher`` and the answer settings, and passes each call on:

- writes: ``writer()`` (one exclusive session, see ``backend.WriteSession``), ``delete``;
- reads: ``search`` (``search``), ``ask`` (``answer``), ``document(s)``, ``status``, ``check``.

Settings are parameters; nothing here reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ContextManager, Mapping, Sequence

import numpy as np

from .answer import Answer, answer_question
from .backend import Backend, WriteSession
from .chat import LLMConfig
from . import vault
from .errors import DocumentNotFoundError, EmbeddingMismatchError
from .locking import check_timeout
from .records import Counts, Document, DocumentInfo, DocumentSummary, Filter, Hit, NoteLinks
from .search import LEXICAL_WEIGHT, MIN_RELATIVE_SCORE, Searcher
from .sqlite_faiss import SqliteFaissBackend

DEFAULT_DATA_DIR = ".noteloom"
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


def resolve_data_dir(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``.noteloom`` in the working folder."""
    return Path(path or DEFAULT_DATA_DIR)


class Notebook:
    """Notes in ``folder`` (default ``.noteloom``).

    ``embedding_model``: the model to use, checked against the one the folder was
    built with (``EmbeddingMismatchError`` if they differ); without it the recorded
    model, else the injected embedder's ``name``, else ``default_embedding_model``.
    ``embedder``: an object with ``embed_batch(texts)`` (and ``dim``, ``name``) or a
    callable ``texts -> (n, dim) array``, used instead of loading the model.
    ``llm``: an OpenAI-compatible endpoint for generated answers (``LLMConfig`` or
    a mapping with ``url``, ``model``, ``key``); None: extractive answers only.
    ``backend``: where documents and vectors live, instead of SQLite + FAISS in ``folder``.
    ``lexical_weight``: how many times BM25's ranking counts against the dense
    ranking's in hybrid search (reciprocal rank fusion).
    ``min_relative_score``: hybrid search's cutoff when a search gives none (0: none;
    ``Searcher.search``).
    """

    def __init__(self, folder: str | os.PathLike | None = None, *, embedding_model: str | None = None,
                 default_embedding_model: str = DEFAULT_EMBEDDING_MODEL, embedder=None,
                 llm: LLMConfig | Mapping[str, Any] | None = None, backend: Backend | None = None,
                 lexical_weight: float = LEXICAL_WEIGHT, min_relative_score: float = MIN_RELATIVE_SCORE) -> None:
        self.folder = resolve_data_dir(folder)
        self.backend: Backend = backend if backend is not None else SqliteFaissBackend(self.folder)
        self.write_timeout: float | None = None  # longest wait for another writer; None: as long as it takes
        self.llm = LLMConfig.of(llm) if llm is not None else None
        recorded = self.backend.embedding()
        named = getattr(embedder, "name", None)  # an injected Embedder names its model
        self.embedding_model = embedding_model or (recorded.model if recorded else named or default_embedding_model)
        if recorded and embedding_model and recorded.model != embedding_model:
            raise EmbeddingMismatchError(
                f"data folder {self.folder} was built with embedding model {recorded.model!r} "
                f"({recorded.dim} dimensions); asked for {embedding_model!r}: use another --data folder"
            )
        self._embedder = embedder
        self.searcher = Searcher(self.backend, lambda texts: self.embed(texts),  # late-bound: embed may be wrapped
                                 lexical_weight=lexical_weight, min_relative_score=min_relative_score)

    # --- embedding ------------------------------------------------------------

    @property
    def embedder(self):
        if self._embedder is None:
            from runtime import get_embedder

            self._embedder = get_embedder(self.embedding_model)
        return self._embedder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        embed_batch = getattr(self.embedder, "embed_batch", self.embedder)  # an Embedder, or a plain callable
        vectors = np.asarray(embed_batch(list(texts)), dtype=np.float32)
        recorded = self.backend.embedding()
        if recorded and vectors.size and vectors.shape[1] != recorded.dim:
            raise EmbeddingMismatchError(
                f"embedder gives {vectors.shape[1]} dimensions but data folder {self.folder} holds {recorded.dim}-dimensional vectors"
            )
        return vectors

    @property
    def dim(self) -> int:
        recorded = self.backend.embedding()
        if recorded:
            return recorded.dim
        known = getattr(self.embedder, "dim", None)
        return int(known) if known is not None else int(self.embed(["dimension probe"]).shape[1])

    # --- writing ----------------------------------------------------------------

    def writer(self, timeout: float | None = None) -> ContextManager[WriteSession]:
        """Exclusive write session; the index is saved when it closes. Another
        process's writer is waited for at most ``timeout`` seconds (default: the
        notebook's ``write_timeout``; None waits as long as it takes), then
        ``WriteLockTimeoutError``."""
        timeout = check_timeout(self.write_timeout if timeout is None else timeout)
        return self.backend.writer(timeout, embedding_model=self.embedding_model)

    def delete(self, doc_id: int) -> DocumentInfo:
        doc = self.backend.document(doc_id, with_text=False)
        with self.writer() as session:
            session.delete(doc_id)
        return doc

    # --- reading ----------------------------------------------------------------

    def search(self, query: str, k: int = 5, *, filters: Mapping[str, Any] | Filter | None = None,
               mode: str = "hybrid", min_relative_score: float | None = None) -> list[Hit]:
        return self.searcher.search(query, k, filters=filters, mode=mode, min_relative_score=min_relative_score)

    def ask(self, question: str, k: int = 5, *, llm: LLMConfig | Mapping[str, Any] | None = None, **options: Any) -> Answer:
        """An extractive answer with exact citations; ``llm`` (default: the notebook's) adds a generated one."""
        config = LLMConfig.of(llm) if llm is not None else self.llm
        return answer_question(self.search, self.embed, question, k, llm=config, **options)

    def document(self, doc_id: int) -> DocumentInfo:
        """The document with its text (a ``Document``)."""
        return self.backend.document(doc_id)

    def links(self, doc_id: int) -> NoteLinks:
        """The document's wiki links, resolved, and the links to it."""
        return self.backend.links(doc_id)

    def open_urls(self, places: Sequence[tuple[int, int]]) -> list[str | None]:
        """For each (document id, offset into its text), the URL that opens it in the
        user's editor (``vault.open_url``); None for an upload or a document gone."""
        roots = {c.name: c.root for c in self.backend.collections().values()}
        found: dict[int, DocumentInfo | None] = {}
        out: list[str | None] = []
        for doc_id, offset in places:
            if doc_id not in found:
                found[doc_id] = self._located(doc_id, roots)
            doc = found[doc_id]
            if doc is None:
                out.append(None)
                continue
            line = vault.line_at(doc.text, offset, doc.line_offset) if isinstance(doc, Document) else None
            out.append(vault.open_url(roots.get(doc.collection), doc.path, doc.kind, line))
        return out

    def _located(self, doc_id: int, roots: dict[str, str | None]) -> DocumentInfo | None:
        """The document, with its text only when a line number will be counted in it."""
        try:
            info = self.backend.document(doc_id, with_text=False)
            root = roots.get(info.collection)
            if root and info.kind in ("markdown", "text") and not vault.is_vault(root):
                return self.backend.document(doc_id)
            return info
        except DocumentNotFoundError:
            return None

    def documents(self, limit: int = 1000, offset: int = 0) -> list[DocumentSummary]:
        return self.backend.documents(limit=limit, offset=offset)

    def chunk_count(self, doc_id: int) -> int:
        return self.backend.chunk_count(doc_id)

    def counts(self) -> Counts:
        return self.backend.counts()

    def check(self):
        """The backend's full check (``noteloom status --check``): ``ok``, ``problems``, ``to_dict()``."""
        return self.backend.check()

    def status(self) -> dict[str, Any]:
        counts = self.backend.counts()
        embedding = self.backend.embedding()
        return {
            "data_dir": str(self.folder),
            **counts.to_dict(),
            "embedding": embedding.to_dict() if embedding else {"model": self.embedding_model},
            "chunker": self.backend.get_meta("chunker"),
            "index": self.backend.index_state().to_dict(),
            "notices": list(self.notices),
        }

    @property
    def notices(self) -> list[str]:
        return self.backend.notices

    def warm(self) -> None:
        """Load the embedding model and the index now, not on the first request."""
        self.embed(["warm up"])
        self.backend.warm()

    def close(self) -> None:
        self.backend.close()

    # --- the default backend's parts, for tools and tests that look at the files

    @property
    def store(self):
        """The SQLite store (``SqliteFaissBackend`` only)."""
        return self.backend.store  # type: ignore[attr-defined]

    def index(self):
        """The FAISS index, loaded or rebuilt (``SqliteFaissBackend`` only)."""
        return self.backend.index()  # type: ignore[attr-defined]
