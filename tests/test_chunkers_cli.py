import json
import subprocess
import sys

import pytest


def run(*args, module="service.cli"):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True)


def test_chunk_json_lines_then_summary(notes_dir):
    path = str(notes_dir / "chunking-recursive.md")
    proc = run("chunk", path, "--method", "sentence", "--max-tokens", "60", "--json", "-o", "sentences_per_chunk=2")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    chunks, summary = lines[:-1], lines[-1]["summary"]
    text = (notes_dir / "chunking-recursive.md").read_text(encoding="utf-8")
    assert chunks and all(text[c["start"] : c["end"]] == c["text"] and c["file"] == path for c in chunks)
    assert {"text", "start", "end", "token_count", "meta", "file"} <= set(chunks[0])
    assert summary["chunks"] == len(chunks) and summary["tokens_max"] <= 60 and summary["method"] == "sentence"


def test_bad_files_are_named_and_others_still_chunked(tmp_path, notes_dir):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait".encode("latin-1"))
    good = notes_dir / "chunking-fixed-size.md"
    proc = run("chunk", str(bad), str(tmp_path / "missing.md"), str(tmp_path), str(good), "--max-tokens", "200")
    assert proc.returncode == 1
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 3
    assert "latin1.txt: not valid UTF-8 (byte 0xe9 at offset 3)" in errors[0]
    assert "missing.md: no such file" in errors[1]
    assert "is a directory" in errors[2]
    assert f"== {good}:" in proc.stdout


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--method", "nope"], "unknown chunker 'nope'; available: fixed, sentence"),
        (["--max-tokens", "0"], "max_tokens must be >= 1, got 0"),
        (["--overlap", "600"], "overlap must be < max_tokens (512), got 600"),
        (["--tokenizer", "gpt9"], "unknown tokenizer 'gpt9'"),
        (["-o", "sentences_per_chunk=2"], "unknown parameter 'sentences_per_chunk'"),
    ],
)
def test_bad_options_exit_2_with_a_message(args, needle, notes_dir):
    proc = run("chunk", str(notes_dir / "chunking-recursive.md"), *args)
    assert proc.returncode == 2 and needle in proc.stderr


def test_python_dash_m_chunkers(notes_dir):
    proc = run(str(notes_dir / "chunking-recursive.md"), "--method", "hybrid", module="chunkers")
    assert proc.returncode == 0 and "chunks (hybrid)" in proc.stdout
