import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from ingest import Ingestor
from retrieval import Notebook

ROOT = Path(__file__).resolve().parent.parent


class ChatHandler(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that answers from passage [1]."""

    seen: list = []

    def do_POST(self):  # noqa: N802 - http.server naming
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        ChatHandler.seen.append((self.path, self.headers.get("authorization"), body))
        user = body["messages"][-1]["content"]
        first = user.split("[1] ", 1)[1].split("\n", 1)[0]
        reply = {"choices": [{"message": {"role": "assistant", "content": f"According to the notes [1]: {first[:60]}"}}]}
        data = json.dumps(reply).encode()
        self.send_response(200 if body["model"] != "broken" else 500)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def chat_server():
    server = HTTPServer(("127.0.0.1", 0), ChatHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture(scope="module")
def notebook(tmp_path_factory, notes_dir):
    nb = Notebook(tmp_path_factory.mktemp("data"))
    Ingestor(nb).ingest_paths([notes_dir / "rag-embeddings-faiss.md", notes_dir / "sd-lora-datasets.md"])
    return nb


def test_generated_answer_comes_alongside_the_extractive_one(notebook, chat_server):
    answer = notebook.ask("Why can't HNSW remove ids?", llm={"url": chat_server, "model": "tiny", "key": "sk-test"})
    path, auth, body = ChatHandler.seen[-1]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test" and body["model"] == "tiny"
    assert "Question: Why can't HNSW remove ids?" in body["messages"][-1]["content"]
    generated = answer.generated
    assert generated["answer"].startswith("According to the notes [1]")
    top = answer.hits[0]
    assert generated["citations"] == [{"n": 1, "source": top.source, "start": top.start, "end": top.end}]
    assert answer.covered and answer.citations  # the extractive answer is still there


def test_a_failing_endpoint_is_reported_not_raised(notebook, chat_server):
    answer = notebook.ask("Why can't HNSW remove ids?", llm={"url": chat_server, "model": "broken", "key": ""})
    assert "500" in answer.generated["error"] and answer.citations


def cli(*args, data):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "service.cli", "--data", str(data), *args], capture_output=True, text=True, env=env)


def test_cli_ingest_search_ask_status_json(tmp_path, notes_dir):
    data = tmp_path / "data"
    r = cli("ingest", str(notes_dir), "--json", data=data)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["added"]) == 12
    again = json.loads(cli("ingest", str(notes_dir), "--json", data=data).stdout)
    assert again["unchanged"] == 12 and again["chunks_embedded"] == 0
    every = json.loads(cli("search", "reciprocal rank fusion", "-k", "3", "--min-relative-score", "0", "--json",
                           data=data).stdout)["hits"]
    assert len(every) == 3 and {"chunk_id", "source", "start", "end", "text", "score"} <= set(every[0])
    # by default, a sure first hit leaves the weak ones out: the setting's cutoff
    hits = json.loads(cli("search", "reciprocal rank fusion", "-k", "3", "--json", data=data).stdout)["hits"]
    cut = json.loads(cli("search", "reciprocal rank fusion", "-k", "3", "--min-relative-score", "0.86", "--json",
                         data=data).stdout)["hits"]
    assert hits == cut and 1 <= len(hits) < 3 and hits[0] == every[0]
    answer = json.loads(cli("ask", "What does BREAK do in a prompt?", "--json", data=data).stdout)
    assert answer["covered"] and {"source", "start", "end", "text"} <= set(answer["citations"][0])
    status = json.loads(cli("status", "--json", data=data).stdout)
    assert status["documents"] == 12 and status["index"]["kind"] == "flat" and status["index"]["up_to_date"]
    human = cli("status", data=data).stdout
    assert "index: flat with" in human


def test_cli_errors_exit_non_zero_with_a_message(tmp_path):
    r = cli("ask", "   ", data=tmp_path / "d")
    assert r.returncode == 2 and "question must not be empty" in r.stderr
    r = cli("search", "x", "-k", "0", data=tmp_path / "d")
    assert r.returncode == 2 and "k must be an integer from 1 to 100, got 0" in r.stderr
    r = cli("ingest", str(tmp_path / "missing"), data=tmp_path / "d")
    assert r.returncode == 1 and "missing" in r.stderr
    r = cli("ingest", str(tmp_path), "--method", "nope", data=tmp_path / "d")
    assert r.returncode == 2 and "unknown chunker 'nope'" in r.stderr


def test_cli_prompt(tmp_path, notes_dir):
    data = tmp_path / "data"
    cli("ingest", str(notes_dir / "sd-prompting-basics.md"), data=data)
    r = cli("prompt", "a lighthouse in a storm, crashing waves, seagulls, dark clouds", "--style", "oil painting", "--budget", "12", "--json", data=data)
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["tokens"]["prompt"] <= 12 and body["dropped"] and body["prompt"].startswith("a lighthouse in a storm")
    human = cli("prompt", "a lighthouse in a storm", "--budget", "6", data=data)
    assert "dropped to fit:" in human.stdout and "CLIP tokens" in human.stdout
    bad = cli("prompt", "(unbalanced", data=data)
    assert bad.returncode == 2 and "unbalanced '('" in bad.stderr
