"""The model runtime: embedders behind one protocol, torch setup, the CLIP counter."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chunkers
import runtime
from runtime import ClipCounter, Embedder, HashingEmbedder, InvalidSettingError

ROOT = Path(__file__).resolve().parent.parent
TEXTS = ["a photo of a cat on a sofa", "a picture of a cat on the sofa", "income tax law for small companies", ""]


def check_embedder(embedder, texts=TEXTS):
    """What every Embedder promises: float32 (n, dim), unit rows, a name."""
    assert isinstance(embedder, Embedder)
    assert isinstance(embedder.name, str) and embedder.name
    vectors = embedder.embed_batch(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (len(texts), embedder.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(embedder(texts), vectors)  # callable wherever a plain function is accepted
    return vectors


# --- HashingEmbedder -------------------------------------------------------------


def test_hashing_embedder_keeps_the_protocol_and_ranks_similar_texts_closer():
    vectors = check_embedder(HashingEmbedder())
    cat, cat2, tax, empty = vectors
    assert cat @ cat2 > 0.5 and cat @ cat2 > cat @ tax + 0.4
    assert abs(float(empty @ cat)) < 0.3  # no words: a fixed unit vector, not zeros or NaN


def test_hashing_embedder_is_deterministic_across_instances_and_processes():
    here = HashingEmbedder(64).embed_batch(TEXTS)
    assert np.array_equal(here, HashingEmbedder(64).embed_batch(TEXTS))
    code = f"import json, runtime; print(json.dumps(runtime.HashingEmbedder(64).embed_batch({TEXTS!r}).tolist()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "123"})
    assert np.array_equal(np.asarray(json.loads(out.stdout), dtype=np.float32), here)


def test_hashing_embedder_refuses_bad_dims_and_non_text():
    for bad in (0, 7, True, 2.5, "64"):
        with pytest.raises(InvalidSettingError, match="dim"):
            HashingEmbedder(bad)
    with pytest.raises(TypeError, match="position 1"):
        HashingEmbedder().embed_batch(["fine", 3])
    assert HashingEmbedder(64).name == "hashing-64" and HashingEmbedder().name == "hashing"


def test_get_embedder_resolves_names_callables_and_embedders():
    assert isinstance(runtime.get_embedder("hashing"), HashingEmbedder)
    assert runtime.get_embedder("hashing-32").dim == 32
    assert runtime.get_embedder("hashing") is runtime.get_embedder("hashing")  # one per process

    def fn(texts):
        return np.ones((len(texts), 2), dtype=np.float32)

    assert runtime.get_embedder(fn) is fn

    class Plain:  # an embedder that is not callable: its embed_batch is used
        name, dim = "plain", 2

        def embed_batch(self, texts):
            return fn(texts)

    assert runtime.get_embedder(Plain())(["x"]).shape == (1, 2)
    with pytest.raises(InvalidSettingError, match="embedder must be"):
        runtime.get_embedder(42)


def test_semantic_chunker_takes_the_hashing_embedder():
    text = "Cats sleep on the sofa. Cats purr on the sofa. Income tax law applies to companies. Tax law for companies."
    chunker = chunkers.get("semantic", max_tokens=64, threshold=0.2, embedder=HashingEmbedder())
    assert [c.text for c in chunker(text)] == ["Cats sleep on the sofa. Cats purr on the sofa.",
                                              "Income tax law applies to companies. Tax law for companies."]


# --- MiniLM (packaged offline) -------------------------------------------------------


def test_minilm_embedder_keeps_the_protocol():
    embedder = runtime.get_embedder()
    assert isinstance(embedder, runtime.SentenceTransformerEmbedder) and embedder.name == runtime.DEFAULT_MODEL
    assert embedder.dim == 384
    cat, cat2, tax, _ = check_embedder(embedder)
    assert cat @ cat2 > cat @ tax + 0.3
    assert embedder.embed_batch([]).shape == (0, 384)


# --- torch setup ---------------------------------------------------------------------


def test_threads_and_cache_folder_are_parameters(tmp_path):
    import torch

    try:
        runtime.configure(threads=1, cache_dir=tmp_path)
        assert runtime.cpu_threads() == 1 and runtime.cache_dir() == tmp_path
        assert runtime.configure_torch() is torch and torch.get_num_threads() == 1
        runtime.configure_torch(threads=2)
        assert torch.get_num_threads() == 2
        folder = runtime.clip_tokenizer_folder()
        assert folder.parent == tmp_path and (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
        for bad in (0, -1, True, 1.5, "2"):
            with pytest.raises(InvalidSettingError, match="threads"):
                runtime.configure(threads=bad)
    finally:
        runtime.configure()
    assert runtime.cpu_threads() >= 1 and runtime.cache_dir() != tmp_path


def test_pick_device_takes_a_preference_or_finds_one():
    import torch

    assert runtime.pick_device("cpu") == "cpu"
    assert runtime.pick_device() == ("cuda" if torch.cuda.is_available() else runtime.pick_device(candidates=("mps", "cpu")))
    assert runtime.pick_device(candidates=("cpu",)) == "cpu"
    for bad in ("", "gpu-please", 3):
        with pytest.raises(InvalidSettingError, match="device"):
            runtime.pick_device(bad)


# --- one ClipCounter -------------------------------------------------------------------

CLIP_TEXTS = ["a photo of a cat", "(masterpiece:1.2), “quoted” &amp; café, 85mm f/1.8", "日本語のテキスト 🦙",
              "  extra   spaces\n\nand lines  ", "", "a <cat-toy> on a shelf"]


def test_clip_counter_agrees_with_open_clip_for_chunks_and_prompts():
    import open_clip

    reference = open_clip.get_tokenizer("ViT-L-14")
    counter = ClipCounter()
    chunk_counter = chunkers.get_tokenizer("clip")
    expected = [len([i for i in reference([t])[0].tolist() if i not in (0, 49406, 49407)]) for t in CLIP_TEXTS]
    assert [counter(t) for t in CLIP_TEXTS] == expected
    assert counter.count_batch(CLIP_TEXTS) == expected
    assert [chunk_counter.count(t) for t in CLIP_TEXTS] == expected
    assert chunk_counter.count_batch(CLIP_TEXTS) == expected
    assert chunk_counter.counter.tokenizer is counter.tokenizer  # the same tokenizer behind both uses


def test_clip_counter_ids_and_token_ends():
    counter = ClipCounter()
    text = "a red fox, snow"
    ids = counter.ids(text)
    assert len(ids) == counter(text) == 5 and 49406 not in ids and 49407 not in ids
    ends = counter.token_ends(text)
    assert ends.tolist() == [1, 5, 9, 10, 15]
    assert counter.token_ends("").size == 0


def test_clip_counter_counts_learned_tokens_as_one():
    text = "a <cat-toy> on a shelf"
    assert ClipCounter(["<cat-toy>"])(text) == ClipCounter()("a toy on a shelf") < ClipCounter()(text)
    assert ClipCounter(["<cat-toy>", "<cat-toy>"]).added_tokens == ("<cat-toy>",)


def test_chunks_measured_in_clip_tokens_fit_the_budget(markdown_notes):
    text = next(iter(markdown_notes.values()))
    counter = ClipCounter()
    chunks = chunkers.get("recursive", max_tokens=40, tokenizer="clip")(text)
    assert chunks and all(counter(c.text) <= 40 for c in chunks)


# --- lazy imports and no environment ---------------------------------------------------


@pytest.mark.parametrize("package", ["runtime", "chunkers", "imagegen"])
def test_importing_loads_no_ml_framework(package):
    code = (f"import sys, {package}; heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', 'diffusers', "
            "'open_clip', 'faiss') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("package", ["runtime", "imagegen"])
def test_no_environment_access(package):
    """Settings come in as parameters; only ``service`` reads the environment."""
    for path in sorted((ROOT / package).glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv", "unsetenv"):
                pytest.fail(f"{path.name}:{node.lineno} uses os.{node.attr}")


def test_runtime_public_names():
    assert sorted(runtime.__all__) == sorted(set(runtime.__all__))
    for name in runtime.__all__:
        assert hasattr(runtime, name), name
