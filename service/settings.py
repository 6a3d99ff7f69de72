"""Every setting of noteloom, in one place: its type, default, environment
variable and one line of help (``Settings``).

``load_settings`` reads them from the environment and, optionally, a TOML file
(``--config FILE`` or ``NOTELOOM_CONFIG``) whose keys are the field names; the
environment wins over the file, the command line over both, and each value
remembers where it came from (``Settings.source``). A bad value is a
``SettingsError`` naming the variable (or the file and key) and quoting the value.

This is the only module that touches ``os.environ``: the libraries take plain
parameters, passed to them by ``service.wiring``. ``prepare_process`` sets
``OMP_WAIT_POLICY`` before torch loads, since OpenMP reads it only then.
"""

from __future__ import annotations

import difflib
import os
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from ingest.loaders import DEFAULT_LIMITS

from .capacity import parse_limits
from .setting_kinds import (FLAG, NAME, OPTIONAL_NAME, PATH, PATHS, SECRET, Kind, choice, fraction, number, positive_integer,
                            positive_number, whole)

CONFIG_ENV = "NOTELOOM_CONFIG"


class SettingsError(ValueError):
    """A setting with a bad value, an unknown key or an unreadable config file."""


def setting(default: Any, env: str, help: str, kind: Kind, *, factory: Any = None) -> Any:
    """A field of ``Settings``: its default (or ``factory``), variable, help and kind."""
    meta = {"env": env, "help": help, "kind": kind}
    return field(default_factory=factory, metadata=meta) if factory else field(default=default, metadata=meta)


def _cpus() -> int:
    return os.cpu_count() or 1


def _admission(text: str) -> str:
    parse_limits(text)  # raises ValueError naming the bad class or number
    return text


STORAGE_BACKENDS = ("sqlite-faiss", "qdrant")


def _storage_backend(raw: str) -> str:
    if str(raw).strip().lower() not in STORAGE_BACKENDS:
        raise ValueError()
    return str(raw).strip().lower()


STORAGE_BACKEND = Kind(f"one of {', '.join(STORAGE_BACKENDS)}", _storage_backend, str)
QDRANT_ENGINES = ("client", "edge")  # retrieval.qdrant_store.ENGINES, without importing it


def _qdrant_engine(raw: str) -> str:
    if str(raw).strip().lower() not in QDRANT_ENGINES:
        raise ValueError()
    return str(raw).strip().lower()


QDRANT_ENGINE = Kind(f"one of {', '.join(QDRANT_ENGINES)}", _qdrant_engine, str)


EMBEDDING_BACKENDS = ("auto", "torch", "onnx", "onnx-int8")  # runtime.AUTO and runtime.BACKENDS, without importing it


def _embedding_backend(text: str) -> str:
    if text.strip().lower() not in EMBEDDING_BACKENDS:
        raise ValueError()
    return text.strip().lower()


EMBEDDING_BACKEND = Kind(f"one of {', '.join(EMBEDDING_BACKENDS)}", _embedding_backend, str)
ADMISSION = Kind("class=running/queued/wait,... (classes: search, ask, documents, generate, score)", _admission, str)


@dataclass(frozen=True)
class Settings:
    # --- data and models
    data_dir: Path = setting(Path(".noteloom"), "NOTELOOM_DATA", "data folder (--data wins)", PATH)
    embedding_model: str = setting("all-MiniLM-L6-v2", "NOTELOOM_EMBEDDING_MODEL",
                                   "embedding model of a new data folder (an existing one keeps its own)", NAME)
    embedding_backend: str = setting("auto", "NOTELOOM_EMBEDDING_BACKEND",
                                     "how a new data folder's model runs: torch, onnx, onnx-int8; auto: onnx-int8 for "
                                     "the packaged MiniLM when onnxruntime is installed, else torch", EMBEDDING_BACKEND)
    cache_dir: Path = setting(None, "NOTELOOM_CACHE", "folder for derived files (the CLIP tokenizer's vocabulary)", PATH,
                              factory=lambda: Path(tempfile.gettempdir()) / "noteloom-cache")
    # --- where documents and vectors live (the default: SQLite + FAISS in data_dir)
    backend: str = setting("sqlite-faiss", "NOTELOOM_BACKEND", "storage backend: sqlite-faiss, or qdrant (extra [qdrant])",
                           STORAGE_BACKEND)
    qdrant_url: str | None = setting(None, "NOTELOOM_QDRANT_URL", "Qdrant server or cluster URL; unset: local mode in qdrant_path",
                                     OPTIONAL_NAME)
    qdrant_api_key: str = setting("", "NOTELOOM_QDRANT_API_KEY", "API key of the Qdrant server", SECRET)
    qdrant_path: str | None = setting(None, "NOTELOOM_QDRANT_PATH", "folder of Qdrant's local mode (default: data_dir/qdrant)",
                                      OPTIONAL_NAME)
    qdrant_collection: str = setting("noteloom", "NOTELOOM_QDRANT_COLLECTION", "name prefix of the Qdrant collections", NAME)
    qdrant_engine: str = setting("client", "NOTELOOM_QDRANT_ENGINE", "what opens qdrant_path: client (qdrant-client's local "
                                 "mode) or edge (Qdrant's own engine in process, qdrant-edge-py)", QDRANT_ENGINE)
    allow_downloads: bool = setting(False, "NOTELOOM_ALLOW_DOWNLOADS", "let missing SD and CLIP weights be downloaded", FLAG)
    device: str | None = setting(None, "NOTELOOM_DEVICE", "torch device for SD and CLIP (default: CUDA, MPS, else CPU)", OPTIONAL_NAME)
    # --- threads
    threads: int = setting(None, "NOTELOOM_THREADS", "torch and FAISS CPU threads (default: every core)", positive_integer(),
                           factory=_cpus)
    encode_threads: int = setting(None, "NOTELOOM_ENCODE_THREADS", "threads tiktoken encodes one text with", positive_integer(),
                                  factory=lambda: min(2, _cpus()))
    omp_wait_policy: str = setting("PASSIVE", "OMP_WAIT_POLICY", "idle OpenMP threads sleep (PASSIVE) or spin (ACTIVE)",
                                   choice("PASSIVE", "ACTIVE"))
    # --- generated answers (an OpenAI-compatible chat endpoint)
    llm_url: str | None = setting(None, "NOTELOOM_LLM_URL", "chat endpoint base URL; unset: extractive answers only", OPTIONAL_NAME)
    llm_model: str = setting("gpt-4o-mini", "NOTELOOM_LLM_MODEL", "model asked at the chat endpoint", NAME)
    llm_key: str = setting("", "NOTELOOM_LLM_KEY", "API key for the chat endpoint", SECRET)
    # --- Stable Diffusion
    sd_model: str | None = setting(None, "NOTELOOM_SD_MODEL", "diffusers folder, checkpoint file or cached Hugging Face id", OPTIONAL_NAME)
    sd_config: str | None = setting(None, "NOTELOOM_SD_CONFIG", "diffusers config folder for a single-file checkpoint", OPTIONAL_NAME)
    sd_lora: tuple[str, ...] = setting((), "NOTELOOM_SD_LORA", f"LoRA weight files ('{os.pathsep}'-separated)", PATHS)
    sd_textual_inversion: tuple[str, ...] = setting((), "NOTELOOM_SD_TEXTUAL_INVERSION",
                                                    f"textual inversion files, path[=token] ('{os.pathsep}'-separated)", PATHS)
    attention_slicing: bool = setting(False, "NOTELOOM_ATTENTION_SLICING", "slice attention (less memory, slower)", FLAG)
    vae_slicing: bool = setting(False, "NOTELOOM_VAE_SLICING", "decode images one at a time (less memory)", FLAG)
    cpu_offload: bool = setting(False, "NOTELOOM_CPU_OFFLOAD", "keep SD parts on the CPU until used (CUDA)", FLAG)
    # --- CLIP scoring
    clip_model: str = setting("ViT-L-14", "NOTELOOM_CLIP_MODEL", "open_clip model that scores images", NAME)
    clip_pretrained: str | None = setting("openai", "NOTELOOM_CLIP_PRETRAINED",
                                          "open_clip tag or weights file; empty: random weights", OPTIONAL_NAME)
    clip_config_dir: str | None = setting(None, "NOTELOOM_CLIP_CONFIG_DIR", "extra open_clip model configs (JSON)", OPTIONAL_NAME)
    lexical_weight: float = setting(3.0, "NOTELOOM_LEXICAL_WEIGHT",
                                    "hybrid search: BM25's ranking counts this many times the dense ranking's",
                                    number(0, 100))
    min_relative_score: float = setting(0.86, "NOTELOOM_MIN_RELATIVE_SCORE",
                                        "hybrid search: when the first hit leads both rankings, leave out hits under "
                                        "this share of the best scores; 0: never", fraction())
    # --- the HTTP server
    api_key: str = setting("", "NOTELOOM_API_KEY", "key every endpoint but /health needs; empty: none", SECRET)
    max_generations: int = setting(1, "NOTELOOM_MAX_GENERATIONS", "image generations running at once", whole(1, 64))
    document_seconds: float = setting(60.0, "NOTELOOM_DOCUMENT_SECONDS", "parse + chunk time per uploaded document",
                                      number(0, 24 * 3600))
    ingest_workers: int = setting(1, "NOTELOOM_INGEST_WORKERS", "processes parsing and chunking uploads", whole(1, 16))
    ray_address: str | None = setting(None, "NOTELOOM_RAY_ADDRESS", "Ray cluster of `ingest --engine ray`: auto, ray://host:port; "
                                      "unset: a local Ray", OPTIONAL_NAME)
    admission: str = setting("", "NOTELOOM_ADMISSION", "per route class running/queued/wait, e.g. ask=1/4/2", ADMISSION)
    write_lock_seconds: float = setting(10.0, "NOTELOOM_WRITE_LOCK_SECONDS", "longest wait of a write for the writer lock",
                                        number(0, 3600))
    keep_alive_seconds: float = setting(5.0, "NOTELOOM_KEEP_ALIVE_SECONDS", "an idle keep-alive connection closes after this",
                                        number(0, 3600))
    header_seconds: float = setting(10.0, "NOTELOOM_HEADER_SECONDS", "request line and headers must arrive within this",
                                    number(0, 3600))
    body_seconds: float = setting(10.0, "NOTELOOM_BODY_SECONDS", "longest pause while a request body arrives", number(0, 3600))
    # --- watch mode (noteloom watch, serve --watch, mcp --watch)
    watch_debounce_ms: int = setting(300, "NOTELOOM_WATCH_DEBOUNCE_MS", "file events are grouped for at most this long",
                                     whole(50, 60_000))
    watch_ignore: tuple[str, ...] = setting((), "NOTELOOM_WATCH_IGNORE",
                                            f"globs watch mode also ignores ('{os.pathsep}'-separated; hidden folders and "
                                            "swap files always are)", PATHS)
    # --- what one document may cost to load (ingest.loaders.LoadLimits)
    max_file_bytes: int = setting(DEFAULT_LIMITS.max_file_bytes, "NOTELOOM_MAX_FILE_BYTES", "larger files are refused",
                                  positive_integer())
    max_front_matter_bytes: int = setting(DEFAULT_LIMITS.max_front_matter_bytes, "NOTELOOM_MAX_FRONT_MATTER_BYTES",
                                          "a larger front matter block is kept as text", positive_integer())
    max_front_matter_depth: int = setting(DEFAULT_LIMITS.max_front_matter_depth, "NOTELOOM_MAX_FRONT_MATTER_DEPTH",
                                          "nesting of front matter lists and mappings", positive_integer())
    max_tags: int = setting(DEFAULT_LIMITS.max_tags, "NOTELOOM_MAX_TAGS", "tags kept per document", positive_integer())
    max_tag_chars: int = setting(DEFAULT_LIMITS.max_tag_chars, "NOTELOOM_MAX_TAG_CHARS", "longer tags are dropped",
                                 positive_integer())
    max_title_chars: int = setting(DEFAULT_LIMITS.max_title_chars, "NOTELOOM_MAX_TITLE_CHARS", "a longer title is cut",
                                   positive_integer())
    max_pdf_pages: int = setting(DEFAULT_LIMITS.max_pdf_pages, "NOTELOOM_MAX_PDF_PAGES", "pages read from a PDF",
                                 positive_integer())
    max_pdf_chars: int = setting(DEFAULT_LIMITS.max_pdf_chars, "NOTELOOM_MAX_PDF_CHARS", "characters read from a PDF",
                                 positive_integer())
    max_pdf_chars_per_byte: int = setting(DEFAULT_LIMITS.max_pdf_chars_per_byte, "NOTELOOM_MAX_PDF_CHARS_PER_BYTE",
                                          "extracted characters per byte of PDF", positive_integer())
    max_pdf_seconds: float = setting(DEFAULT_LIMITS.max_pdf_seconds, "NOTELOOM_MAX_PDF_SECONDS", "time to read one PDF",
                                     positive_number())
    max_pdf_stream_bytes: int = setting(DEFAULT_LIMITS.max_pdf_stream_bytes, "NOTELOOM_MAX_PDF_STREAM_BYTES",
                                        "one inflated PDF content stream", positive_integer())
    max_blank_run: int = setting(DEFAULT_LIMITS.max_blank_run, "NOTELOOM_MAX_BLANK_RUN", "spaces or tabs in a row before shortening",
                                 positive_integer())

    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    """Field name -> where its value came from, for the fields not at their default."""

    def source(self, name: str) -> str:
        """``default``, ``env NOTELOOM_X``, ``config FILE`` or ``command line --x``."""
        return self.sources.get(name, "default")

    def override(self, source: str, **values: Any) -> "Settings":
        """These settings with ``values`` (the None ones skipped) set from ``source``."""
        given = {k: v for k, v in values.items() if v is not None}
        return replace(self, **given, sources={**self.sources, **dict.fromkeys(given, source)})


def declared() -> list:
    """The fields of ``Settings`` that are settings (all but ``sources``), in order."""
    return [f for f in fields(Settings) if "env" in f.metadata]


def load_settings(environ: Mapping[str, str] | None = None, config_file: str | os.PathLike | None = None) -> Settings:
    """The settings from ``environ`` (default ``os.environ``) over ``config_file``
    (default ``$NOTELOOM_CONFIG``) over the defaults. An empty variable counts as
    unset. Every bad value is reported, one per line, in one ``SettingsError``."""
    environ = os.environ if environ is None else environ
    path = config_file or environ.get(CONFIG_ENV) or None
    table = read_config(Path(path)) if path else {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: list[str] = []
    for f in declared():
        env, kind = f.metadata["env"], f.metadata["kind"]
        if environ.get(env, "").strip() or (env in environ and kind.reads_empty):
            raw, where, source = environ[env], env, f"env {env}"
        elif f.name in table:
            raw, where, source = table[f.name], f"{path}: {f.name}", f"config {path}"
        else:
            continue
        try:
            values[f.name] = kind.read(raw)
            sources[f.name] = source
        except (TypeError, ValueError) as exc:
            problems.append(f"{where} must be {kind.expected}, got {raw!r}" + (f" ({exc})" if str(exc) else ""))
    if problems:
        raise SettingsError("\n".join(problems))
    return Settings(**values, sources=sources)


def read_config(path: Path) -> dict[str, Any]:
    """The table of a TOML config file; unknown keys are refused with the closest name."""
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"config file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    names = [f.name for f in declared()]
    for key in table:
        if key not in names:
            near = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; the settings are: {', '.join(names)}"
            raise SettingsError(f"config file {path}: unknown setting {key!r}{hint}")
    return table


def describe(settings: Settings) -> list[dict[str, Any]]:
    """One row per setting: name, value as shown (secrets hidden), source, variable, help."""
    rows = []
    for f in declared():
        kind: Kind = f.metadata["kind"]
        rows.append({"name": f.name, "value": kind.show(getattr(settings, f.name)), "source": settings.source(f.name),
                     "env": f.metadata["env"], "help": f.metadata["help"]})
    return rows


def prepare_process(settings: Settings) -> None:
    """Process-wide settings that must be in place before torch is imported."""
    if "torch" not in sys.modules:
        os.environ["OMP_WAIT_POLICY"] = settings.omp_wait_policy
