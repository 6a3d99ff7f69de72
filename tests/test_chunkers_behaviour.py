import json
import subprocess
import sys
import textwrap
import tracemalloc

import pytest

import chunkers
from chunkers import Chunk
from chunkers.sentences import split_sentences
from tests.invariants import check_chunks


def test_chunk_is_frozen_with_exact_offsets():
    text = "# Title\n\nFirst paragraph here.\n\nSecond one."
    chunks = chunkers.get("paragraph", max_tokens=8, min_tokens=0)(text)
    assert [c.text for c in chunks] == ["# Title", "First paragraph here.", "Second one."]
    assert all(text[c.start : c.end] == c.text for c in chunks)
    with pytest.raises(AttributeError):
        chunks[0].start = 3  # type: ignore[misc]
    assert isinstance(chunks[0], Chunk) and chunks[1].meta == {"headings": ["Title"]}


def test_sentence_splitting_handles_abbreviations_and_decimals():
    text = (
        "Dr. Smith trained the LoRA at 9 a.m. in the U.S. office. The loss fell to 3.5 after "
        "e.g. 800 steps, i.e. fast. Was it overfit? No! Captions matter."
    )
    assert split_sentences(text) == [
        "Dr. Smith trained the LoRA at 9 a.m. in the U.S. office.",
        "The loss fell to 3.5 after e.g. 800 steps, i.e. fast.",
        "Was it overfit?",
        "No!",
        "Captions matter.",
    ]


def test_sentence_chunker_groups_at_most_n_sentences():
    text = "One is here. Two is here. Three is here. Four is here. Five is here."
    chunks = chunkers.get("sentence", max_tokens=100, sentences_per_chunk=2)(text)
    assert [c.text for c in chunks] == ["One is here. Two is here.", "Three is here. Four is here.", "Five is here."]


def test_sentence_over_budget_is_split_not_emitted_over():
    long_sentence = "word " * 300 + "end."
    chunker = chunkers.get("sentence", max_tokens=50)
    chunks = chunker("Short one. " + long_sentence)
    assert len(chunks) > 5 and max(c.token_count for c in chunks) <= 50
    check_chunks("Short one. " + long_sentence, chunks, chunker)


def test_fixed_windows_with_overlap_step_by_budget_minus_overlap():
    text = "abcdefghij" * 300
    chunks = chunkers.get("fixed", max_tokens=1000, overlap=200, tokenizer="chars")(text)
    assert [(c.start, c.end) for c in chunks] == [(0, 1000), (800, 1800), (1600, 2600), (2400, 3000)]


def test_fixed_overlap_drops_a_re_planned_window_inside_the_previous_one():
    # "café 🦙." is over 4 tokens: re-planned, its first part lies inside the window before
    text = "the. the. the. café 🦙.\n\n"
    chunker = chunkers.get("fixed", max_tokens=4, overlap=1)
    chunks = chunker(text)
    check_chunks(text, chunks, chunker)
    assert [(c.start, c.end) for c in chunks] == [(0, 9), (8, 19), (20, 22)]


def test_paragraph_merges_tiny_paragraphs_up_to_min_tokens():
    text = "Tiny.\n\nAlso tiny.\n\n" + "A longer paragraph with quite a few words in it, " * 3 + "done."
    chunks = chunkers.get("paragraph", max_tokens=200, min_tokens=10)(text)
    assert chunks[0].text.startswith("Tiny.\n\nAlso tiny.")
    plain = chunkers.get("paragraph", max_tokens=200, min_tokens=0)(text)
    assert len(plain) == 3


FENCED = textwrap.dedent(
    """\
    # Pipeline

    Some words about the pipeline before the code.

    ```python
    # load the model
    pipe = StableDiffusionPipeline.from_pretrained(path)

    # generate
    image = pipe(prompt, num_inference_steps=25).images[0]
    ```

    After the code, a closing paragraph with several more words in it.
    """
)


def test_recursive_never_splits_inside_a_code_block_that_fits():
    chunker = chunkers.get("recursive", max_tokens=45)
    chunks = chunker(FENCED)
    block = FENCED[FENCED.index("```python") : FENCED.rindex("```") + 3]
    assert any(block in c.text for c in chunks), [c.text for c in chunks]
    check_chunks(FENCED, chunks, chunker)


def test_recursive_splits_an_oversized_code_block_at_lines():
    chunker = chunkers.get("recursive", max_tokens=12)
    chunks = chunker(FENCED)
    check_chunks(FENCED, chunks, chunker)
    inside = [c for c in chunks if "pipe" in c.text]
    assert all(c.text == c.text.strip() for c in inside) and len(inside) >= 2


def test_hybrid_keeps_sections_apart_and_records_heading_path(markdown_notes):
    text = "# A\n\nalpha text.\n\n## B\n\nbeta text.\n\n### C\n\ngamma.\n\n# D\n\ndelta."
    chunks = chunkers.get("hybrid")(text)
    assert [c.meta["headings"] for c in chunks] == [["A"], ["A", "B"], ["A", "B", "C"], ["D"]]
    assert [c.text for c in chunks][1] == "## B\n\nbeta text."


def test_headings_inside_code_are_not_headings():
    text = "# Real\n\n```\n# not a heading\n```\n"
    chunks = chunkers.get("hybrid")(text)
    assert [c.meta["headings"] for c in chunks] == [["Real"]]


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t \n"])
@pytest.mark.parametrize("name", ["fixed", "sentence", "paragraph", "recursive", "hybrid"])
def test_empty_or_whitespace_gives_no_chunks(name, text):
    assert chunkers.get(name)(text) == []


@pytest.mark.parametrize("bad", [None, b"bytes", 3, ["list"]])
def test_non_string_input_is_a_type_error(bad):
    with pytest.raises(TypeError, match="str"):
        chunkers.get("recursive")(bad)


@pytest.mark.parametrize(
    "params,needle",
    [
        (dict(max_tokens=0), "max_tokens must be >= 1, got 0"),
        (dict(max_tokens=-5), "got -5"),
        (dict(max_tokens=10, overlap=10), "overlap must be < max_tokens (10), got 10"),
        (dict(overlap=-1), "overlap must be >= 0, got -1"),
        (dict(max_tokens="512"), "max_tokens must be an integer, got '512'"),
        (dict(tokenizer="gpt9"), "unknown tokenizer 'gpt9'"),
        (dict(max_tokenz=5), "unknown parameter 'max_tokenz' (value 5)"),
    ],
)
def test_bad_parameters_name_the_value(params, needle):
    with pytest.raises(ValueError) as info:
        chunkers.get("recursive", **params)
    assert needle in str(info.value)


def test_unknown_chunker_lists_the_choices():
    with pytest.raises(chunkers.UnknownChunkerError) as info:
        chunkers.get("recursve")
    assert isinstance(info.value, LookupError) and isinstance(info.value, ValueError)
    for name in ["fixed", "sentence", "paragraph", "recursive", "semantic", "hybrid"]:
        assert name in str(info.value)


def test_method_specific_parameter_errors():
    with pytest.raises(ValueError, match="sentences_per_chunk must be >= 1, got 0"):
        chunkers.get("sentence", sentences_per_chunk=0)
    with pytest.raises(ValueError, match="mode must be one of split, group, got 'cluster'"):
        chunkers.get("semantic", mode="cluster")
    with pytest.raises(ValueError, match="percentile must be in"):
        chunkers.get("semantic", percentile=100)


def test_params_round_trip_through_get():
    chunker = chunkers.get("sentence", max_tokens=77, sentences_per_chunk=3, tokenizer="words")
    assert chunker.params() == {"max_tokens": 77, "overlap": 0, "tokenizer": "words", "sentences_per_chunk": 3}
    again = chunkers.get("sentence", **chunker.params())
    assert again.params() == chunker.params()


def test_chunk_batch_matches_one_by_one_and_across_processes(markdown_notes):
    chunker = chunkers.get("recursive", max_tokens=64)
    texts = list(markdown_notes.values())
    expected = [chunker(t) for t in texts]
    assert chunker.chunk_batch(texts) == expected
    assert chunker.chunk_batch(texts, workers=2) == expected


def test_callable_tokenizer_chunks_stay_within_budget():
    chunker = chunkers.get("recursive", max_tokens=7, tokenizer=lambda s: len(s.split()))
    text = "one two three four five six seven eight nine ten eleven twelve. " * 3
    chunks = chunker(text)
    assert all(len(c.text.split()) <= 7 for c in chunks)
    assert chunker.chunk_batch([text], workers=2) == [chunks]  # callables stay in-process


def test_token_counter_must_return_an_int():
    chunker = chunkers.get("recursive", max_tokens=7, tokenizer=lambda s: "many")
    with pytest.raises(TypeError, match="must return an int"):
        chunker("some text here")


def test_clip_tokenizer_counts_like_open_clip():
    import open_clip

    tok = open_clip.get_tokenizer("ViT-L-14")
    count = chunkers.get_tokenizer("clip").count
    for text in ["a photo of a cat", "(masterpiece:1.2), “quoted” &amp; café, 85mm f/1.8", "日本語のテキスト 🦙"]:
        ids = [i for i in tok([text])[0].tolist() if i not in (0, 49406, 49407)]
        assert count(text) == len(ids), text


def test_memory_grows_linearly_with_text_size():
    paragraph = "Retrieval works best when chunks are coherent. " * 12 + "\n\n"
    chunker = chunkers.get("recursive", max_tokens=256)
    peaks = []
    for repeats in (2_000, 8_000):  # ~1.2 MB and ~4.8 MB
        text = paragraph * repeats
        tracemalloc.start()
        chunks = chunker(text)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert chunks[-1].end == len(text.rstrip())
        del chunks, text
    assert peaks[1] / peaks[0] < 4 * 1.5, peaks  # 4x the text: ~4x the memory, never 16x


PLUGIN = '''
from chunkers import Chunk, Chunker

class LinesChunker(Chunker):
    def chunk(self, text):
        out, pos = [], 0
        for line in text.splitlines(keepends=True):
            if line.strip():
                s = pos + len(line) - len(line.lstrip())
                e = pos + len(line.rstrip())
                out.append(Chunk(text[s:e], s, e, self.tokenizer.count(text[s:e]), len(out)))
            pos += len(line)
        return out
'''


def test_outside_chunker_registers_through_the_entry_point_group(tmp_path):
    (tmp_path / "myplugin.py").write_text(PLUGIN)
    dist = tmp_path / "myplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[noteloom.chunkers]\nlines = myplugin:LinesChunker\n")
    code = (
        "import sys, chunkers; sys.path.insert(0, sys.argv[1]);"
        "print(chunkers.available()); c = chunkers.get('lines', max_tokens=9);"
        "print([x.text for x in c('a b\\n\\n c d ')]);"
        "chunkers.get('lines', bogus=1)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    assert "'lines'" in lines[0] and lines[1] == "['a b', 'c d']"
    assert "unknown parameter 'bogus'" in proc.stderr


def test_import_chunkers_stays_light():
    code = (
        "import sys, chunkers; chunkers.get('recursive')('Some text. More text.');"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', 'faiss', 'diffusers', 'open_clip') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("overlap", [0, 16])
def test_fixed_windows_are_full_no_leftover_fragments(markdown_notes, overlap):
    chunker = chunkers.get("fixed", max_tokens=64, overlap=overlap)
    for text in markdown_notes.values():
        chunks = chunker(text)
        # a window may lose a token or two where a cut splits a pre-token, never more
        assert all(c.token_count >= 60 for c in chunks[:-1]), [c.token_count for c in chunks]


def test_chunk_batch_uses_worker_processes(markdown_notes, monkeypatch):
    import chunkers.concurrency as concurrency

    used = []
    monkeypatch.setattr(concurrency, "ProcessPoolExecutor", lambda *a, **k: used.append(k) or __import__("concurrent.futures").futures.ProcessPoolExecutor(*a, **k))
    chunker = chunkers.get("recursive", max_tokens=64)
    texts = list(markdown_notes.values())
    assert chunker.chunk_batch(texts, workers=2) == [chunker(t) for t in texts]
    assert used and used[0]["max_workers"] == 2


@pytest.mark.parametrize("text,expected", [
    ("# A\n\ntext\n## B\nx", [(0, 1, "A"), (10, 2, "B")]), ("no heading", []), ("x\n#notheading\n### C", [(14, 3, "C")]),
    ("#", []), ("\n# D", [(1, 1, "D")]), ("```\n# code\n```\n# E", [(15, 1, "E")]),
])
def test_heading_detection(text, expected):
    from chunkers.levels import Source

    assert Source(text).headings == expected


def test_long_texts_encode_in_the_background_also_in_forked_workers(markdown_notes):
    """Texts over one encoding block are encoded on a background thread while the
    engine finds boundaries; chunk_batch's forked workers must get fresh threads."""
    import subprocess

    from chunkers.tokenizers import TiktokenCounter

    long_text = "\n\n".join(markdown_notes.values()) * 8
    assert len(long_text) > TiktokenCounter.BLOCK_CHARS
    script = textwrap.dedent(
        """
        import json, sys
        import chunkers
        text = sys.stdin.read()
        chunker = chunkers.get("sentence", max_tokens=64)
        first = chunker(text)  # starts the parent's background threads
        batch = chunker.chunk_batch([text, text[: len(text) // 2]], workers=2)
        print(json.dumps([len(first), batch[0] == first, len(batch[1])]))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], input=long_text, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    n_chunks, same, n_half = json.loads(done.stdout)
    assert same and n_chunks > 100 and 0 < n_half < n_chunks
    expected = chunkers.get("sentence", max_tokens=64)(long_text)
    assert len(expected) == n_chunks


def test_chunking_leaves_the_cyclic_gc_alone(markdown_notes):
    """A library must not switch the collector process-wide: it stays as the
    caller set it, during chunking too, also when chunking fails."""
    import gc

    long_text = "\n\n".join(markdown_notes.values()) * 40
    seen = []

    def counting(s: str) -> int:  # a callable tokenizer sees the collector's state mid-chunk
        seen.append(gc.isenabled())
        if s.startswith("FAIL"):
            raise RuntimeError("tokenizer failed")
        return len(s.split())

    chunker = chunkers.get("paragraph", max_tokens=2000, min_tokens=0, tokenizer=counting)
    assert gc.isenabled()
    assert chunker(long_text) and gc.isenabled() and seen and all(seen)
    gc.disable()
    try:
        seen.clear()
        chunker(long_text + " more")
        assert not gc.isenabled() and not any(seen)  # a caller's own setting is left alone
    finally:
        gc.enable()
    with pytest.raises(RuntimeError, match="tokenizer failed"):
        chunker("FAIL " + long_text)
    assert gc.isenabled()


# --- chunking while the text is still being encoded ----------------------------
# Texts over one encoding block are planned in text order as blocks arrive (every
# method: the measure encodes as far as each question needs). Tiny blocks make
# even short texts do that.

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from chunkers.measure import block_bounds  # noqa: E402
from chunkers.tokenizers import TiktokenCounter  # noqa: E402
from tests.test_chunkers_invariants import DOCUMENT  # noqa: E402

WHILE_ENCODING = [
    ("recursive", {"max_tokens": 64}),
    ("hybrid", {"max_tokens": 48, "overlap": 8}),
    ("fixed", {"max_tokens": 40, "overlap": 8}),
    ("paragraph", {"max_tokens": 64}),
    ("paragraph", {"max_tokens": 48, "min_tokens": 16, "overlap": 12}),
    ("paragraph", {"max_tokens": 40, "min_tokens": 0, "overlap": 1, "tokenizer": "o200k_base"}),
    ("sentence", {"max_tokens": 40, "overlap": 8}),
    ("sentence", {"max_tokens": 64, "sentences_per_chunk": 2, "overlap": 4}),
]


class RecordingCounter(TiktokenCounter):
    """Records where each block it encodes starts."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.encoded: list[int] = []

    def block_ends(self, block: str, offset: int = 0):
        self.encoded.append(offset)
        return super().block_ends(block, offset)


def chunked_while_and_after_encoding(text: str, name: str, params: dict, block_chars: int):
    params = dict(params)
    tokenizer = params.pop("tokenizer", "cl100k_base")
    after = chunkers.get(name, tokenizer=tokenizer, **params)
    blocks = RecordingCounter(tokenizer, threads=1, block_chars=block_chars)
    during = chunkers.get(name, tokenizer=blocks, **params)
    chunks = during(text)
    blank = not text or text.isspace()  # nothing to chunk, so nothing encoded (e.g. "\x85\n\n")
    assert blank or sorted(set(blocks.encoded)) == [a for a, _ in block_bounds(text, block_chars)], "not encoded block by block"
    return chunks, after(text) if len(text) < TiktokenCounter.BLOCK_CHARS else None, during


@pytest.mark.parametrize("name,params", WHILE_ENCODING)
def test_chunking_while_the_text_is_encoded_equals_chunking_after(name, params, markdown_notes):
    text = "\n\n".join(markdown_notes.values())
    for block_chars in (300, 2000):
        during, after, chunker = chunked_while_and_after_encoding(text, name, params, block_chars)
        assert during == after, (name, params, block_chars)
        check_chunks(text, during, chunker)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=DOCUMENT, config=st.sampled_from(WHILE_ENCODING), budget=st.sampled_from([4, 12]), block_chars=st.sampled_from([16, 60, 400]))
def test_chunking_while_encoded_equals_after_on_generated_documents(text, config, budget, block_chars):
    name, params = config
    params = {**params, "max_tokens": budget, "overlap": min(params.get("overlap", 0), budget // 3)}
    if name == "paragraph":
        params["min_tokens"] = min(params.get("min_tokens", 64), budget // 2)
    during, after, chunker = chunked_while_and_after_encoding(text, name, params, block_chars)
    assert during == after
    check_chunks(text, during, chunker)


# --- what is and is not a fenced code block ----------------------------------

_PROSE = " ".join(f"Sentence number {i} says a little about the topic." for i in range(60))


@pytest.mark.parametrize("underline", ["~~~~~~~~~~~~~~~~", "````````````````"])
def test_a_restructuredtext_title_underline_opens_no_code_block(underline):
    # Read as a fence, the underline made the rest of the text one unsplittable block.
    text = f"Inode properties\n{underline}\n\n{_PROSE}\n"
    chunker = chunkers.get("sentence", max_tokens=40)
    chunks = chunker(text)
    check_chunks(text, chunks, chunker)
    assert len(chunks) > 5
    assert all(c.text.rstrip().endswith((".", underline)) for c in chunks)


def test_a_tab_indented_tilde_line_is_no_fence():
    text = f"Diagram::\n\n\t~~~~~|~~~~~~\n\n{_PROSE}\n"
    chunks = chunkers.get("sentence", max_tokens=40)(text)
    assert all(c.text.rstrip().endswith((".", "~")) for c in chunks)


def test_a_real_fence_still_keeps_its_code_whole():
    code = "\n".join(f"x{i} = compute({i})  # step {i}. Then more." for i in range(8))
    text = f"Example:\n~~~\n{code}\n~~~\n\n{_PROSE}\n"
    chunks = chunkers.get("sentence", max_tokens=200)(text)
    assert any(code in c.text for c in chunks)
