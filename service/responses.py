"""Search and ask answers as both the HTTP API and the MCP tools give them: the
notebook's hits and citations as API models, each with the URL that opens its note."""

from __future__ import annotations

from typing import Any

import msgspec

from retrieval import Notebook

from .models import AnswerResponse, Hit, SearchResponse


def search_response(notebook: Notebook, query: str, k: int, filters: dict[str, Any] | None, mode: str,
                    min_relative_score: float | None = None) -> SearchResponse:
    opt_in = {} if min_relative_score is None else {"min_relative_score": min_relative_score}  # any Notebook-like search
    hits = msgspec.convert(notebook.search(query, k=k, filters=filters, mode=mode, **opt_in), list[Hit], from_attributes=True)
    for hit, url in zip(hits, notebook.open_urls([(h.doc_id, h.start) for h in hits])):
        hit.open_url = url
    return SearchResponse(query=query, mode=mode, hits=hits)


def answer_response(notebook: Notebook, question: str, k: int) -> AnswerResponse:
    answer = msgspec.convert(notebook.ask(question, k=k).to_dict(), AnswerResponse)  # the notebook's LLM endpoint
    for citation, url in zip(answer.citations, notebook.open_urls([(c.doc_id, c.start) for c in answer.citations])):
        citation.open_url = url
    return answer
