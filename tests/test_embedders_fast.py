"""The ONNX Runtime embedding backends: specs and store identity, the setting,
and the fast path checked against the slow reference (sentence-transformers on
torch) on a tiny seeded model and on the packaged MiniLM."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import runtime
from ingest import Ingestor
from retrieval import EmbeddingMismatchError, Notebook
from runtime import HashingEmbedder, InvalidSettingError, OnnxEmbedder
from service import wiring
from service.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent
MODEL = runtime.DEFAULT_MODEL
TEXTS = ["The cat sat on the mat.", "Quarterly revenue grew by twelve percent.", "Photosynthesis turns light into sugar.",
         "a", "Ünïcödé text, with punctuation!? and numbers 3.14", " ".join(["long"] * 400)]


# --- specs and identity -----------------------------------------------------------------


def test_specs_name_model_and_backend():
    assert runtime.embedder_spec(MODEL, "torch") == MODEL  # today's stores keep their identity
    assert runtime.embedder_spec(MODEL, "onnx-int8") == f"{MODEL}@onnx-int8"
    assert runtime.split_spec(f"{MODEL}@onnx") == (MODEL, "onnx")
    assert runtime.split_spec("/some/folder") == ("/some/folder", "torch")
    assert runtime.backend_of(f"{MODEL}@onnx-int8") == "onnx-int8"
    assert runtime.backend_of("hashing-64") == "hashing" and runtime.backend_of(MODEL) == "torch"


def test_auto_picks_onnx_int8_for_the_packaged_model_only():
    assert runtime.onnx_available()  # the lock installs it: CI measures the default
    assert runtime.embedder_spec(MODEL, "auto") == f"{MODEL}@onnx-int8"
    assert runtime.embedder_spec("my/other-model", "auto") == "my/other-model"
    assert runtime.embedder_spec("hashing", "auto") == "hashing"


def test_bad_backends_are_refused_with_the_value_quoted():
    with pytest.raises(InvalidSettingError, match="'tensorrt'"):
        runtime.embedder_spec(MODEL, "tensorrt")
    with pytest.raises(InvalidSettingError, match="hashing"):
        runtime.embedder_spec("hashing", "onnx")
    with pytest.raises(InvalidSettingError, match="'gpu'"):
        runtime.get_embedder(f"{MODEL}@gpu")
    with pytest.raises(InvalidSettingError, match="CPU"):
        runtime.get_embedder(f"{MODEL}@onnx", device="cuda")


def test_vectors_of_two_backends_never_share_a_store(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "cats.md").write_text("# Cats\n\nA note about cats and their habits.\n")
    fast = f"{MODEL}@onnx-int8"
    nb = Notebook(tmp_path / "data", embedding_model=fast, embedder=HashingEmbedder())
    Ingestor(nb).ingest_paths([notes])
    nb.close()
    with pytest.raises(EmbeddingMismatchError, match="onnx-int8"):
        Notebook(tmp_path / "data", embedding_model=MODEL)  # torch vectors may not join
    kept = wiring.notebook(load_settings({"NOTELOOM_EMBEDDING_BACKEND": "torch"}), tmp_path / "data")
    try:
        assert kept.embedding_model == fast  # the folder's own backend wins over the setting
    finally:
        kept.close()


def test_the_setting_names_the_backend_of_a_new_folder_and_an_old_one_keeps_its_own(tmp_path):
    assert load_settings({}).embedding_backend == "auto"
    s = load_settings({"NOTELOOM_EMBEDDING_BACKEND": "ONNX"})
    nb = wiring.notebook(s, tmp_path / "data")
    try:
        assert nb.embedding_model == f"{MODEL}@onnx"
    finally:
        nb.close()
    with pytest.raises(SettingsError, match="NOTELOOM_EMBEDDING_BACKEND"):
        load_settings({"NOTELOOM_EMBEDDING_BACKEND": "cuda"})


def test_status_shows_the_backend(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), NOTELOOM_EMBEDDING_BACKEND="onnx-int8")
    run = lambda *args: subprocess.run([sys.executable, "-m", "service.cli", "--data", str(tmp_path / "data"), "status", *args],
                                       capture_output=True, text=True, env=env, check=True).stdout
    assert json.loads(run("--json"))["embedding"] == {"model": f"{MODEL}@onnx-int8", "backend": "onnx-int8"}
    assert "embedding backend: onnx-int8" in run()


# --- the fast path against the reference ---------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A seeded, randomly initialised 2-layer BERT as a sentence-transformers folder
    (transformer + mean pooling + normalize), with the packaged model's tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-st")
    packaged = Path(runtime.resolve_model_path(MODEL))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(packaged / name, folder / name)
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": False}))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}))
    return folder


def reference(folder: Path, texts) -> np.ndarray:
    return runtime.SentenceTransformerEmbedder(str(folder), device="cpu").embed_batch(texts)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def test_onnx_fp32_equals_torch_on_a_tiny_model(tiny_model, tmp_path):
    fast = OnnxEmbedder(tiny_model, variant="fp32", name="tiny@onnx", cache_dir=tmp_path, threads=2)
    vectors = fast.embed_batch(TEXTS)  # two texts at a time, in whatever order the threads finish
    assert vectors.shape == (len(TEXTS), 32) and vectors.dtype == np.float32 and fast.dim == 32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert cosines(vectors, reference(tiny_model, TEXTS)).min() > 0.9999  # truncation at 64 tokens as sentence-transformers
    assert fast.embed_batch([]).shape == (0, 32)


def test_onnx_int8_stays_close_to_torch_on_a_tiny_model(tiny_model, tmp_path):
    fast = OnnxEmbedder(tiny_model, variant="int8", name="tiny@onnx-int8", cache_dir=tmp_path)
    assert cosines(fast.embed_batch(TEXTS), reference(tiny_model, TEXTS)).min() > 0.95


@pytest.mark.parametrize("threads", [1, 2])
def test_an_int8_vector_does_not_depend_on_what_else_is_embedded(tiny_model, tmp_path, threads):
    """int8 activations are quantized over the whole input: a text runs alone, so its
    vector is the same in any call (a local ingest, a Ray actor's batch, a query)."""
    fast = OnnxEmbedder(tiny_model, variant="int8", name="tiny@onnx-int8", cache_dir=tmp_path, threads=threads)
    together = fast.embed_batch(TEXTS)
    for i, text in enumerate(TEXTS):
        assert np.array_equal(fast.embed_batch([text])[0], together[i])
    assert np.array_equal(fast.embed_batch(TEXTS[::-1])[::-1], together)


def test_the_onnx_file_is_cached_and_rebuilt_when_the_model_changes(tiny_model, tmp_path):
    first = runtime.onnx_file(tiny_model, "fp32", tmp_path)
    stamp = first.stat().st_mtime_ns
    assert runtime.onnx_file(tiny_model, "fp32", tmp_path) == first and first.stat().st_mtime_ns == stamp
    changed = tmp_path / "changed"
    shutil.copytree(tiny_model, changed)
    (changed / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 32}))
    assert runtime.onnx_file(changed, "fp32", tmp_path) != first
    assert [p.name for p in (tmp_path / "onnx").iterdir() if not p.name.endswith(".onnx")] == []  # no half-built leftovers


def test_folders_the_backend_cannot_reproduce_are_refused(tiny_model, tmp_path):
    with pytest.raises(InvalidSettingError, match="local model folder"):
        runtime.onnx_file(tmp_path / "missing", "fp32", tmp_path)
    with pytest.raises(InvalidSettingError, match="variant"):
        runtime.onnx_file(tiny_model, "int4", tmp_path)
    cls = tmp_path / "cls"
    shutil.copytree(tiny_model, cls)
    (cls / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    with pytest.raises(InvalidSettingError, match="mean pooling"):
        OnnxEmbedder(cls, variant="fp32", name="cls", cache_dir=tmp_path).embed_batch(["x"])
    with pytest.raises(TypeError, match="position 1"):
        OnnxEmbedder(tiny_model, variant="fp32", name="t", cache_dir=tmp_path).embed_batch(["ok", 3])


def test_the_default_fast_backend_keeps_the_packaged_models_vectors(tmp_path):
    """onnx-int8 on the real MiniLM: the quality bar the default was chosen by."""
    texts = TEXTS[:3] + ["How do I reset my password?", "Interest rates rose in the third quarter of the fiscal year."]
    fast = OnnxEmbedder(runtime.resolve_model_path(MODEL), variant="int8", name=f"{MODEL}@onnx-int8", cache_dir=tmp_path)
    reference_vectors = runtime.get_embedder(MODEL).embed_batch(texts)
    assert cosines(fast.embed_batch(texts), reference_vectors).min() > 0.97


def test_importing_runtime_loads_no_onnx_runtime():
    code = "import sys, runtime; print([m for m in ('onnxruntime', 'onnx', 'torch') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]"
