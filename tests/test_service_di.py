"""The handlers take the notebook and the settings' objects by dependency injection:
an app built around a stand-in notebook serves it and leaves closing it to its
owner; the notebook the settings build carries the configured chat endpoint."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from service.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class StandInHit:
    source: str
    text: str
    chunk_id: int = 1
    doc_id: int = 2
    title: str = "Stand-in"
    start: int = 0
    end: int = 9
    score: float = 0.5
    headings: list = field(default_factory=list)
    dense_score: float | None = None
    lexical_score: float | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class StandInAnswer:
    question: str

    def to_dict(self) -> dict:
        return {"question": self.question, "answer": "from the stand-in", "covered": False, "citations": []}


@dataclass
class StandInCounts:
    documents: int = 7
    chunks: int = 42


class StandInNotebook:
    """Only what the routes used here call."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.closed = False
        self.write_timeout = None
        self.calls: list = []

    def search(self, query, k, filters, mode):
        self.calls.append(("search", query, k, filters, mode))
        return [StandInHit(source="stand-in.md", text=f"about {query}")]

    def counts(self) -> StandInCounts:
        return StandInCounts()

    def open_urls(self, places):
        return [None for _ in places]  # its documents have no folder

    def ask(self, question, k):
        self.calls.append(("ask", question, k))
        return StandInAnswer(question)

    def close(self) -> None:
        self.closed = True


@pytest.fixture()
def served(tmp_path):
    from litestar.testing import TestClient

    from service.app import ServiceConfig, create_app

    settings = load_settings({"NOTELOOM_LLM_URL": "http://chat.invalid/v1", "NOTELOOM_LLM_MODEL": "tiny", "NOTELOOM_LLM_KEY": "sk",
                              "NOTELOOM_API_KEY": "k"})
    nb = StandInNotebook(tmp_path)
    app = create_app(ServiceConfig.from_settings(settings), settings=settings, notebook=nb, warm=False)
    with TestClient(app=app) as client:
        client.headers["X-API-Key"] = "k"
        yield client, nb
    assert not nb.closed  # the app did not open it, so it does not close it


def test_an_injected_notebook_is_the_one_the_routes_use(served):
    client, nb = served
    assert client.get("/health").json() == {"status": "ok", "documents": 7, "chunks": 42}
    r = client.post("/search", json={"query": "lighthouses", "k": 3, "mode": "lexical"})
    assert r.status_code == 200, r.text
    assert [(h["source"], h["text"]) for h in r.json()["hits"]] == [("stand-in.md", "about lighthouses")]
    assert nb.calls[-1] == ("search", "lighthouses", 3, None, "lexical")


def test_ask_is_answered_by_the_injected_notebook(served):
    client, nb = served
    r = client.post("/ask", json={"question": "why?"})
    assert r.status_code == 200 and r.json()["answer"] == "from the stand-in"
    assert nb.calls[-1] == ("ask", "why?", 5)


def test_the_notebook_built_from_the_settings_carries_the_chat_endpoint(tmp_path):
    from retrieval import LLMConfig
    from service import wiring

    settings = load_settings({"NOTELOOM_LLM_URL": "http://chat.invalid/v1", "NOTELOOM_LLM_MODEL": "tiny", "NOTELOOM_LLM_KEY": "sk"})
    nb = wiring.notebook(settings, tmp_path / "data")
    try:
        assert nb.llm == LLMConfig("http://chat.invalid/v1", "tiny", "sk")
    finally:
        nb.close()
    off = wiring.notebook(load_settings({}), tmp_path / "data")
    try:
        assert off.llm is None
    finally:
        off.close()


def test_the_api_key_comes_from_the_settings(served):
    client, _ = served
    assert client.get("/health", headers={"X-API-Key": "wrong"}).json() == {"status": "ok"}
    assert client.post("/search", json={"query": "x"}, headers={"X-API-Key": "wrong"}).status_code == 401


def test_route_handlers_do_not_reach_into_the_app_state():
    for name in ("app.py", "images.py"):
        assert "request.app.state" not in (ROOT / "service" / name).read_text(encoding="utf-8"), name
