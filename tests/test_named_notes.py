"""A query that names a note by its file name ranks that note's passages by its other words."""

from pathlib import Path

from ingest import ChunkSettings, Ingestor
from retrieval import Notebook
from retrieval.search import Searcher

NOTES = {
    "ls": "# ls\n\n## Sizes\n\n--kibibytes: print sizes in kibibytes, blocks of 1024 bytes, unless another block size "
          "is given on the command line.\n\n## See also\n\nFull documentation of ls: info ls, or man ls.\n",
    "du": "# du\n\ndu shows disk usage in kibibytes by default.\n",
    "df": "# df\n\ndf shows free space in kibibytes by default.\n",
}


class Unnamed:
    """The backend with no named notes' list: plain hybrid search over it."""

    def __init__(self, backend):
        self.backend = backend

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def named_search(self, text, k, where=None):
        return []


def test_a_named_notes_passage_outranks_those_that_only_repeat_the_name(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    for name, text in NOTES.items():
        (notes / f"{name}.md").write_text(text, encoding="utf-8")
    nb = Notebook(tmp_path / "data", embedding_model="hashing")
    try:
        assert not Ingestor(nb, ChunkSettings.of("paragraph", max_tokens=64, overlap=0, min_tokens=0)).ingest_paths([notes]).failed
        question = "What does --kibibytes of ls do?"
        plain = Searcher(Unnamed(nb.backend), nb.embed, min_relative_score=0).search(question, k=3)
        assert "kibibytes" not in plain[0].text and " ls" in f" {plain[0].text}", "plain BM25 prefers the name"
        hits = nb.search(question, k=3, min_relative_score=0)
        assert Path(hits[0].source).name == "ls.md" and "--kibibytes: print" in hits[0].text, [h.text for h in hits]
        assert nb.document(hits[0].doc_id).text[hits[0].start:hits[0].end] == hits[0].text
        assert nb.backend.named_search(question, 5)[0][0] == hits[0].chunk_id and hits[0].named_score > 0
        # the HTTP API and the MCP tools show the score it came by
        from service.responses import search_response

        shown = search_response(nb, question, 3, None, "hybrid", 0).hits[0]
        assert (shown.chunk_id, shown.named_score) == (hits[0].chunk_id, hits[0].named_score)
        # the note's name alone gives its passages no order
        assert nb.backend.named_search("ls", 5) == []
    finally:
        nb.close()
