"""A sentence-transformers model run by ONNX Runtime instead of PyTorch, for
faster first ingests on the CPU (figures in the README, "Ingest speed").

The ONNX file is built offline, once, from the model's local folder: torch
exports the transformer (eager attention, so ONNX Runtime's BERT optimizer can
fuse attention, GELU and layer norms), then, for ``onnx-int8``, its weights are
quantized to int8 per output channel (dynamic quantization: activations are
quantized on the fly). The result is cached under ``cache_dir`` by a digest of
the model's files and the recipe, so a changed model or recipe builds a new file.
At run time only onnxruntime, tokenizers and numpy are needed.

Embeddings follow the model's own pipeline: its tokenizer truncated at its
``max_seq_length`` (as sentence-transformers does), mean pooling, L2
normalisation. Each text runs alone, ``threads`` texts at a time: int8
activations are quantized over the whole input, so in a batch a text's vector
would depend on its batch mates (and their padding); alone it is always the
same, and no padding is computed (faster, too: README, "Each text alone").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import InvalidSettingError, MissingDependencyError

RECIPE = "noteloom-onnx-1"  # bump when the export or quantization below changes: cached files are rebuilt
VARIANTS = ("fp32", "int8")
EXTRA = "fast"


def _require(package: str, module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package, "the ONNX embedding backend", EXTRA) from exc


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidSettingError(f"model folder file {str(path)!r} cannot be read: {exc}") from exc


def check_model_folder(folder: Path) -> dict:
    """The folder's transformer config, after checking that it is a model this
    backend reproduces: a transformer, mean pooling, then (optionally) normalisation."""
    if not folder.is_dir():
        raise InvalidSettingError(f"the ONNX backend needs a local model folder, got {str(folder)!r}")
    modules = _read_json(folder / "modules.json") if (folder / "modules.json").is_file() else []
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        raise InvalidSettingError(f"model folder {str(folder)!r} is not transformer + pooling (+ normalize): {kinds}")
    pooling = _read_json(folder / modules[1]["path"] / "config.json")
    if not pooling.get("pooling_mode_mean_tokens") or any(
            v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"):
        raise InvalidSettingError(f"model folder {str(folder)!r} does not use mean pooling: {pooling}")
    if not (folder / "tokenizer.json").is_file():
        raise InvalidSettingError(f"model folder {str(folder)!r} has no tokenizer.json (a fast tokenizer)")
    return _read_json(folder / "config.json")


def max_seq_length(folder: Path) -> int:
    st = folder / "sentence_bert_config.json"
    length = _read_json(st).get("max_seq_length") if st.is_file() else None
    return int(length or _read_json(folder / "config.json").get("max_position_embeddings", 512))


def model_digest(folder: Path) -> str:
    """Digest of the files that decide the vectors (weights, configs, tokenizer) and the recipe."""
    h = hashlib.sha1(RECIPE.encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".txt", ".safetensors", ".bin")):
        h.update(str(path.relative_to(folder)).encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


_build_lock = threading.Lock()


def onnx_file(folder: str | os.PathLike, variant: str, cache_dir: str | os.PathLike) -> Path:
    """The cached ONNX file of ``folder``'s model (``variant`` fp32 or int8), built
    now if missing. Building needs torch and transformers; nothing is downloaded."""
    if variant not in VARIANTS:
        raise InvalidSettingError(f"ONNX variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    folder = Path(folder)
    config = check_model_folder(folder)
    target = Path(cache_dir).expanduser() / "onnx" / f"{folder.name}-{model_digest(folder)}-{variant}.onnx"
    with _build_lock:
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=target.parent) as work, _quiet():
                built = _build(folder, config, variant, Path(work))
                os.replace(built, target)  # atomic: a reader never sees half a file
    return target


@contextlib.contextmanager
def _quiet():
    """The exporter's tracer warnings and the quantizer's advice (logged on the root
    logger) say nothing a user can act on: silence them while building."""
    root = logging.getLogger()
    level = root.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)
        try:
            yield
        finally:
            root.setLevel(level)


def _build(folder: Path, config: dict, variant: str, work: Path) -> Path:
    exported = work / "exported.onnx"
    _export(folder, exported)
    fused = work / "fused.onnx"
    if config.get("model_type") == "bert":
        optimizer = _require("onnxruntime", "onnxruntime.transformers.optimizer")
        model = optimizer.optimize_model(str(exported), model_type="bert", num_heads=int(config["num_attention_heads"]),
                                         hidden_size=int(config["hidden_size"]), opt_level=1)
        model.save_model_to_file(str(fused))
    else:  # other architectures: ONNX Runtime's generic graph optimizations at load time only
        fused = exported
    if variant == "fp32":
        return fused
    quantization = _require("onnxruntime", "onnxruntime.quantization")
    onnx = _require("onnx", "onnx")
    quantized = work / "int8.onnx"
    quantization.quantize_dynamic(
        str(fused), str(quantized), weight_type=quantization.QuantType.QInt8, per_channel=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # the fused ops have no inferred output type
    )
    return quantized


def _export(folder: Path, target: Path) -> None:
    from .torch_setup import configure_torch

    torch = configure_torch()
    try:
        from transformers import AutoModel
    except ImportError as exc:
        raise MissingDependencyError("transformers", "building the ONNX embedding model", "semantic") from exc
    model = AutoModel.from_pretrained(str(folder), local_files_only=True, attn_implementation="eager").eval()

    class Hidden(torch.nn.Module):  # the last hidden state only: pooling runs in numpy
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    sample = torch.ones(2, 8, dtype=torch.long)
    dynamic = {name: {0: "batch", 1: "tokens"} for name in ("input_ids", "attention_mask", "token_type_ids", "hidden")}
    with torch.no_grad():
        torch.onnx.export(Hidden(), (sample, sample, torch.zeros_like(sample)), str(target),
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["hidden"],
                          dynamic_axes=dynamic, opset_version=17, dynamo=False)


class OnnxEmbedder:
    """Embeds with a sentence-transformers model folder through ONNX Runtime.
    ``variant``: "fp32" or "int8"; ``name``: the identity recorded in a store;
    ``threads``: texts run at once, one thread each (None: ``runtime.cpu_threads()``)."""

    def __init__(self, folder: str | os.PathLike, *, variant: str, name: str, cache_dir: str | os.PathLike | None = None,
                 threads: int | None = None) -> None:
        from . import config

        self.folder = Path(folder)
        self.variant = variant
        self.name = name
        self.cache_dir = Path(cache_dir) if cache_dir is not None else config.cache_dir()
        self.threads = config.check_threads(threads) if threads is not None else None
        self._loaded: tuple | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple:
        with self._lock:
            if self._loaded is None:
                from . import config

                ort = _require("onnxruntime", "onnxruntime")
                tokenizers = _require("tokenizers", "tokenizers")
                path = onnx_file(self.folder, self.variant, self.cache_dir)
                options = ort.SessionOptions()
                options.intra_op_num_threads = 1  # parallel across texts instead (see embed_batch)
                options.inter_op_num_threads = 1
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                tokenizer = tokenizers.Tokenizer.from_file(str(self.folder / "tokenizer.json"))
                tokenizer.no_padding()
                tokenizer.enable_truncation(max_seq_length(self.folder))
                dim = int(session.get_outputs()[0].shape[-1])
                threads = self.threads or config.cpu_threads()
                if threads > 1:  # session.run releases the GIL, and one session serves concurrent runs
                    self._pool = ThreadPoolExecutor(threads, thread_name_prefix="noteloom-onnx")
                self._loaded = (session, tokenizer, dim)
            return self._loaded

    @property
    def dim(self) -> int:
        return self._load()[2]

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        session, tokenizer, dim = self._load()
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts must be strings, got {type(text).__name__} at position {row}")
        encodings = tokenizer.encode_batch(list(texts))
        if not encodings:
            return np.zeros((0, dim), dtype=np.float32)

        def mean_hidden(encoding) -> np.ndarray:  # one text, no padding: every position is a real token
            ids = np.asarray([encoding.ids], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids),
                    "token_type_ids": np.asarray([encoding.type_ids], dtype=np.int64)}
            return session.run(None, feed)[0][0].mean(axis=0)

        rows = self._pool.map(mean_hidden, encodings) if self._pool is not None else map(mean_hidden, encodings)
        out = np.stack(list(rows)).astype(np.float32, copy=False)
        from .embedders import normalise

        return normalise(out)

    __call__ = embed_batch

    def __repr__(self) -> str:
        return f"OnnxEmbedder({str(self.folder)!r}, variant={self.variant!r})"
