"""The ``noteloom`` command. Each subcommand imports what it needs when it runs,
so ``noteloom chunk`` never loads torch, and only ``noteloom serve`` loads the
web framework. Settings are read once, in ``main``, and passed to each command."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

from . import wiring
from .settings import Settings, SettingsError, describe, load_settings

EXIT_USAGE = 2
EXIT_FAILED = 1


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _chunking(args, settings: Settings):
    params = {name: value for name, value in (("max_tokens", args.max_tokens), ("overlap", args.overlap)) if value is not None}
    return wiring.chunking(settings, args.method, **params)  # no method: hybrid with the default budget and overlap


def cmd_ingest(args, settings: Settings) -> int:
    from ingest import Ingestor

    nb = wiring.notebook(settings)
    engine = wiring.ray_engine(settings, args.address) if args.engine == "ray" else None
    ingestor = Ingestor(nb, _chunking(args, settings), progress=sys.stderr.isatty(), follow_links=args.follow_links,
                        limits=wiring.load_limits(settings), engine=engine)
    try:
        report = ingestor.ingest_paths(args.paths, prune=args.prune, collection=args.collection)
    finally:
        if engine is not None:
            engine.close()
    for notice in nb.notices:
        print(f"noteloom: {notice}", file=sys.stderr)
    if args.json:
        _print_json(report.to_dict())
    else:
        for source, reason in report.skipped:
            print(f"noteloom ingest: {source}: {reason}", file=sys.stderr)
        for source, notice in report.notices:
            print(f"noteloom ingest: {source}: {notice}", file=sys.stderr)
        for source, error in report.failed:
            print(f"noteloom ingest: error: {error}", file=sys.stderr)
        print(report.summary())
    return EXIT_FAILED if report.failed else 0


def cmd_search(args, settings: Settings) -> int:
    nb = wiring.notebook(settings)
    filters = {}
    if args.source:
        filters["source_prefix"] = args.source
    if args.tag:
        filters["tags"] = args.tag
    hits = nb.search(args.query, k=args.k, filters=filters or None, mode=args.mode, min_relative_score=args.min_relative_score)
    if args.json:
        _print_json({"query": args.query, "mode": args.mode, "hits": [h.to_dict() for h in hits]})
        return 0
    if not hits:
        print("no hits")
    for rank, h in enumerate(hits, start=1):
        where = " > ".join(h.headings)
        print(f"{rank}. {h.source} [{h.start}:{h.end}] score {h.score:.4f}{'  ' + where if where else ''}")
        print("   " + h.text[:300].replace("\n", " ") + ("..." if len(h.text) > 300 else ""))
    return 0


def cmd_ask(args, settings: Settings) -> int:
    nb = wiring.notebook(settings)
    answer = nb.ask(args.question, k=args.k)  # the notebook's LLM endpoint, from the settings
    if args.json:
        _print_json(answer.to_dict())
        return 0
    print(answer.answer)
    for i, c in enumerate(answer.citations, start=1):
        print(f"  [{i}] {c.source} [{c.start}:{c.end}] score {c.score:.3f}")
    if answer.generated:
        print("\nGenerated:", answer.generated.get("answer") or answer.generated.get("error"))
    return 0


def cmd_status(args, settings: Settings) -> int:
    import runtime

    nb = wiring.notebook(settings)
    status = nb.status()
    status["embedding"]["backend"] = runtime.backend_of(status["embedding"]["model"])
    check = nb.check() if args.check else None
    if args.json:
        _print_json({**status, **({"check": check.to_dict()} if check else {})})
        return EXIT_FAILED if check and not check.ok else 0
    idx = status["index"]
    print(f"data folder: {status['data_dir']}")
    print(f"documents: {status['documents']}, chunks: {status['chunks']}")
    print(f"embedding: {status['embedding'].get('model')} ({status['embedding'].get('dim', '?')} dimensions)")
    print(f"embedding backend: {status['embedding']['backend']}")
    print(f"chunker: {status['chunker']}")
    print(f"index: {idx['kind']} with {idx['vectors']} vectors, file {idx['file']}, {'up to date' if idx['up_to_date'] else 'stale (rebuilt on load)'}")
    for notice in status["notices"]:
        print(f"notice: {notice}")
    if check is None:
        return 0
    if check.ok:
        print(f"check: ok ({check.documents} documents, {check.chunks} chunks in {check.seconds:.2f}s)")
        return 0
    for problem in check.problems:
        print(f"check: {problem}")
    print(f"noteloom: data folder {status['data_dir']} is damaged; run `noteloom repair --data {status['data_dir']}`", file=sys.stderr)
    return EXIT_FAILED


def cmd_repair(args, settings: Settings) -> int:
    from ingest.repair import repair

    report = repair(settings.data_dir, force=args.force)
    if args.json:
        _print_json(report.to_dict())
    else:
        for source in report.lost:
            print(f"noteloom repair: lost: {source}", file=sys.stderr)
        print(report.summary())
    return EXIT_FAILED if report.lost else 0


def cmd_prompt(args, settings: Settings) -> int:
    from imagegen import PromptBuilder

    nb = wiring.notebook(settings)
    result = PromptBuilder(nb, added_tokens=args.token).build(
        args.idea, style=args.style, k=args.k, budget=args.budget, negative=not args.no_negative, long=args.long
    )
    if args.json:
        _print_json(result.to_dict())
        return 0
    print(f"prompt ({result.tokens['prompt']}/{result.budget} CLIP tokens):\n  {result.prompt}")
    if not args.no_negative:
        print(f"negative ({result.tokens['negative_prompt']} tokens):\n  {result.negative_prompt}")
    if result.chunks:
        for i, (chunk, n) in enumerate(zip(result.chunks, result.chunk_tokens), start=1):
            print(f"chunk {i} ({n} tokens): {chunk}")
    if result.dropped:
        print("dropped to fit: " + "; ".join(result.dropped))
    if result.negative_dropped:
        print("dropped from the negative: " + "; ".join(result.negative_dropped))
    for c in result.context:
        print(f"  from {c['source']} [{c['start']}:{c['end']}]")
    return 0


def cmd_generate(args, settings: Settings) -> int:
    from imagegen import GenerationRequest, PromptBuilder, generate_and_rank

    nb = wiring.notebook(settings)
    prompt, negative, built = args.idea_or_prompt, args.negative or "", None
    if args.from_notes:
        built = PromptBuilder(nb).build(args.idea_or_prompt, style=args.style)
        prompt, negative = built.prompt, args.negative if args.negative is not None else built.negative_prompt
    request = GenerationRequest(prompt, negative, steps=args.steps, guidance_scale=args.guidance, width=args.width, height=args.height,
                                seed=args.seed, num_images=args.n, scheduler=args.scheduler)
    request.validate()
    backend = wiring.diffusers_backend(settings, nb.folder / "gallery", model=args.model)
    show = sys.stderr.isatty() and not args.json

    def progress(done: int, total: int) -> None:
        if show:
            print(f"\rstep {done}/{total}", end="", file=sys.stderr, flush=True)

    ranked = generate_and_rank(backend, request, wiring.clip_scorer(settings), progress=progress)
    if show:
        print(file=sys.stderr)
    if ranked.unscored:
        print(f"noteloom generate: images not scored: {ranked.unscored}", file=sys.stderr)
    if args.json:
        _print_json({"prompt": prompt, "negative_prompt": negative, "built": built.to_dict() if built else None,
                     "images": [g.to_dict() for g in ranked.images], "scoring": ranked.scoring if ranked.result else None})
        return 0
    print(f"prompt: {prompt}\nnegative: {negative}")
    for g in ranked.images:
        print(f"{g.path}  seed {g.seed}  score {g.score if g.score is not None else '-'}")
    return 0


def cmd_score(args, settings: Settings) -> int:
    from .imagefile import decode_image

    images = []
    for path in args.images:
        try:
            images.append(decode_image(open(path, "rb").read(), path))
        except OSError as exc:
            print(f"noteloom score: error: {path}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILED
    result = wiring.clip_scorer(settings).score(images, args.prompt)
    if args.json:
        _print_json({**result.to_dict(), "images": [{"path": p, "score": s} for p, s in zip(args.images, result.scores)]})
        return 0
    for i in result.order:
        print(f"{result.scores[i]:8.3f}  {args.images[i]}")
    print(f"model {result.model}/{result.pretrained}, score = {result.convention}" + (f"; prompt cut to: {result.prompt_seen!r}" if result.truncated else ""))
    return 0


def cmd_config(args, settings: Settings) -> int:
    rows = describe(settings)
    if args.json:
        _print_json(rows)
        return 0
    shown = ["(none)" if v is None else "(empty)" if v == "" else str(v) for v in (row["value"] for row in rows)]
    name_width, value_width = max(len(row["name"]) for row in rows), min(40, max(map(len, shown)))
    for row, value in zip(rows, shown):
        print(f"{row['name']:<{name_width}}  {value:<{value_width}}  {row['source']:<16}  {row['env']}: {row['help']}")
    return 0


def cmd_serve(args, settings: Settings) -> int:
    import uvicorn

    from retrieval.integrity import check_at_open

    from .app import ServiceConfig, create_app
    from .connections import timed_protocol

    check_at_open(settings.data_dir)  # a damaged store is one line here, not a traceback from the lifespan
    config = ServiceConfig.from_settings(settings)
    protocol = timed_protocol(config.header_seconds, config.body_seconds)
    nb = wiring.notebook(settings) if args.watch else None  # the watcher writes through the notebook the app serves
    app = create_app(config, settings=settings, notebook=nb)
    print(f"noteloom: serving on http://{args.host}:{args.port} (OpenAPI at /schema)", file=sys.stderr)
    # The event loop (accepting, parsing, refusing) shares the GIL with the threads running requests: with
    # Python's default 5 ms switch interval each hand-over to the loop can wait that long, and a refusal needs
    # several. This process is the server, so it sets its own interval (see bench/load_bench.py).
    sys.setswitchinterval(0.001)
    # Overload is handled per route by admission control (service.admission); uvicorn's own limit counts idle
    # connections too, so it is off unless asked for. A bounded shutdown: an upload still embedding must not
    # keep SIGTERM waiting for minutes.
    with _watching(args.watch, settings, nb):
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", http=protocol,
                    limit_concurrency=args.limit_concurrency, timeout_keep_alive=config.keep_alive_seconds,
                    timeout_graceful_shutdown=10)
    if nb is not None:
        nb.close()
    return 0


def cmd_mcp(args, settings: Settings) -> int:
    from retrieval.integrity import check_at_open

    from .mcp import NotebookTools, build_server

    check_at_open(settings.data_dir)
    nb = wiring.notebook(settings)
    nb.warm()  # the model and index load before the client's first call, not during it
    server = build_server(NotebookTools(nb))
    sys.setswitchinterval(0.001)  # as `serve`: each call hands the GIL between the event loop and a worker thread
    with _watching(args.watch, settings, nb):
        if args.http is None:
            server.run("stdio")  # stdout carries the protocol: everything else goes to stderr
        else:
            import uvicorn

            from .mcp import http_app

            print(f"noteloom: MCP on http://127.0.0.1:{args.http}/mcp"
                  + ("" if settings.api_key else " (no NOTELOOM_API_KEY: open to every local user)"), file=sys.stderr)
            uvicorn.run(http_app(server, settings.api_key or None), host="127.0.0.1", port=args.http, log_level="warning",
                        timeout_graceful_shutdown=5)
    return 0


def cmd_watch(args, settings: Settings) -> int:
    from ingest import Ingestor
    from ingest.watch import Watcher

    nb = wiring.notebook(settings)
    ingestor = Ingestor(nb, _chunking(args, settings), follow_links=args.follow_links, limits=wiring.load_limits(settings))
    reports = 0

    def show(report) -> None:
        nonlocal reports
        reports += 1
        if reports == 1:  # the catch-up scan: what changed while nothing watched
            print(f"noteloom watch: caught up: {report.summary()}", file=sys.stderr, flush=True)
        _print_batch(report)

    watcher = Watcher(ingestor, args.paths, wiring.watch_options(settings), on_report=show)
    print(f"noteloom: watching {', '.join(map(str, watcher.roots))} (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        watcher.run()
    except KeyboardInterrupt:
        pass
    return 0


def _print_batch(report) -> None:
    changed = [("added", s) for s in report.added] + [("updated", s) for s in report.updated] + [("removed", s) for s in report.removed]
    for what, source in changed:
        print(f"noteloom watch: {what}: {source}", file=sys.stderr, flush=True)
    for source, error in report.failed:
        print(f"noteloom watch: error: {error}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _watching(paths: list[str] | None, settings: Settings, nb):
    """Keep ``nb`` in step with ``paths`` on a thread while the block runs (nothing when no paths)."""
    if not paths:
        yield
        return
    from ingest import Ingestor
    from ingest.watch import Watcher

    ingestor = Ingestor(nb, wiring.chunking(settings), limits=wiring.load_limits(settings))
    watcher = Watcher(ingestor, paths, wiring.watch_options(settings), on_report=_print_batch)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), name="noteloom-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def build_parser() -> argparse.ArgumentParser:
    from chunkers import cli as chunk_cli

    parser = argparse.ArgumentParser(prog="noteloom", description="RAG over your notes, and Stable Diffusion prompts from them.")
    parser.add_argument("--data", default=None, help="data folder (default: $NOTELOOM_DATA or ./.noteloom)")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="TOML settings file (default: $NOTELOOM_CONFIG); `noteloom config` lists the settings")
    sub = parser.add_subparsers(dest="command", required=True)

    chunk = sub.add_parser("chunk", help="split files into chunks with exact offsets")
    chunk_cli.add_arguments(chunk)
    chunk.set_defaults(handler=lambda args, _settings: chunk_cli.run(args))

    ingest = sub.add_parser("ingest", help="add notes (files or folders) to the notebook")
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument("--prune", action="store_true",
                        help="remove stored notes whose files are gone from the folders given (nothing else)")
    ingest.add_argument("--collection", default=None,
                        help="name for the folder's collection (default: the folder's name); sources are COLLECTION/PATH")
    ingest.add_argument("--follow-links", action="store_true",
                        help="also read symbolic links that point outside the folder (never /proc, /sys, /dev)")
    ingest.add_argument("--method", default=None, help="chunker (default hybrid)")
    ingest.add_argument("--max-tokens", type=int, default=None, help="chunk budget (default 256)")
    ingest.add_argument("--overlap", type=int, default=None, help="chunk overlap (default 32)")
    ingest.add_argument("--engine", default="local", choices=["local", "ray"],
                        help="where files are read, chunked and embedded: here, or on Ray (pip install 'noteloom[ray]')")
    ingest.add_argument("--address", default=None,
                        help="with --engine ray: auto (the cluster running here) or ray://host:port "
                             "(default: $NOTELOOM_RAY_ADDRESS, else a new local Ray)")
    ingest.add_argument("--json", action="store_true")
    ingest.set_defaults(handler=cmd_ingest)

    search = sub.add_parser("search", help="find passages")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=5)
    search.add_argument("--mode", default="hybrid", choices=["hybrid", "dense", "lexical"])
    search.add_argument("--source", default=None, help="only sources starting with this prefix")
    search.add_argument("--tag", action="append", default=[], help="only documents with this front-matter tag")
    search.add_argument("--min-relative-score", type=float, default=None, metavar="F",
                        help="fewer hits when the rest are weak: after the first, keep a hit only if its BM25 score "
                             "or cosine is at least F (0 <= F <= 1) times the best (hybrid: only when the first hit "
                             "leads both rankings); default: the min_relative_score setting for hybrid, 0: never")
    search.add_argument("--json", action="store_true")
    search.set_defaults(handler=cmd_search)

    ask = sub.add_parser("ask", help="answer a question from the notes, with citations")
    ask.add_argument("question")
    ask.add_argument("-k", type=int, default=5)
    ask.add_argument("--json", action="store_true")
    ask.set_defaults(handler=cmd_ask)

    status = sub.add_parser("status", help="what is stored, and which index")
    status.add_argument("--check", action="store_true", help="also check every page, row, offset and vector (slow on large stores)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    repair = sub.add_parser("repair", help="rebuild a damaged data folder from what can be read (the damaged files are kept)")
    repair.add_argument("--force", action="store_true", help="rebuild even when no damage is found")
    repair.add_argument("--json", action="store_true")
    repair.set_defaults(handler=cmd_repair)

    prompt = sub.add_parser("prompt", help="write a Stable Diffusion prompt from an idea and the notes")
    prompt.add_argument("idea")
    prompt.add_argument("--style", default=None)
    prompt.add_argument("--budget", type=int, default=75, help="CLIP content tokens (1..75)")
    prompt.add_argument("-k", type=int, default=5, help="note passages to draw on")
    prompt.add_argument("--no-negative", action="store_true")
    prompt.add_argument("--long", action="store_true", help="keep everything, split into 75-token chunks")
    prompt.add_argument("--token", action="append", default=[], help="a learned token (textual inversion), counted as one token")
    prompt.add_argument("--json", action="store_true")
    prompt.set_defaults(handler=cmd_prompt)

    gen = sub.add_parser("generate", help="generate images with Stable Diffusion and rank them by CLIP score")
    gen.add_argument("idea_or_prompt")
    gen.add_argument("--from-notes", action="store_true", help="build the prompt from the idea and the notes first")
    gen.add_argument("--style", default=None)
    gen.add_argument("--negative", default=None)
    gen.add_argument("-n", type=int, default=1)
    gen.add_argument("--steps", type=int, default=None)
    gen.add_argument("--guidance", type=float, default=None)
    gen.add_argument("--width", type=int, default=None)
    gen.add_argument("--height", type=int, default=None)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--scheduler", default=None, help="DPM++ 2M Karras, Euler a, Euler, DDIM, LCM, UniPC, ...")
    gen.add_argument("--model", default=None, help="diffusers folder, checkpoint file or cached Hugging Face id (else $NOTELOOM_SD_MODEL)")
    gen.add_argument("--json", action="store_true")
    gen.set_defaults(handler=cmd_generate)

    score = sub.add_parser("score", help="CLIP-score images against a prompt")
    score.add_argument("images", nargs="+", metavar="IMAGE")
    score.add_argument("--prompt", required=True)
    score.add_argument("--json", action="store_true")
    score.set_defaults(handler=cmd_score)

    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--limit-concurrency", type=int, default=None,
                       help="connections and requests beyond which uvicorn answers a plain-text 503 (default: no limit; "
                            "expensive routes are limited by admission control, NOTELOOM_ADMISSION)")
    serve.add_argument("--watch", nargs="+", metavar="PATH", default=None,
                       help="also keep these folders in step with the notebook (see `noteloom watch`)")
    serve.set_defaults(handler=cmd_serve)

    mcp = sub.add_parser("mcp", help="serve the notes to AI assistants over the Model Context Protocol (stdio)")
    mcp.add_argument("--watch", nargs="+", metavar="PATH", default=None,
                     help="also keep these folders in step with the notebook (see `noteloom watch`)")
    mcp.add_argument("--http", type=int, default=None, metavar="PORT",
                     help="serve streamable HTTP on 127.0.0.1:PORT/mcp instead of stdio, behind NOTELOOM_API_KEY")
    mcp.set_defaults(handler=cmd_mcp)

    watch = sub.add_parser("watch", help="keep the notebook in step with folders as their files change")
    watch.add_argument("paths", nargs="+", metavar="PATH", help="folders (each a collection, as with `ingest`)")
    watch.add_argument("--follow-links", action="store_true",
                       help="also read symbolic links that point outside the folder (never /proc, /sys, /dev)")
    watch.add_argument("--method", default=None, help="chunker (default hybrid)")
    watch.add_argument("--max-tokens", type=int, default=None, help="chunk budget (default 256)")
    watch.add_argument("--overlap", type=int, default=None, help="chunk overlap (default 32)")
    watch.set_defaults(handler=cmd_watch)

    config = sub.add_parser("config", help="the effective settings and where each came from")
    config.add_argument("--json", action="store_true")
    config.set_defaults(handler=cmd_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(config_file=args.config).override("command line --data", data_dir=args.data and Path(args.data))
    except SettingsError as exc:  # each bad value on its own line, naming the variable
        for line in str(exc).splitlines():
            print(f"noteloom: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    wiring.configure_runtime(settings)
    try:
        return args.handler(args, settings)
    except _storage_error() as exc:  # damage or a full disk: one line that says what to do
        print(f"noteloom: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (ValueError, LookupError) as exc:  # library errors subclass these; name the problem, no traceback
        print(f"noteloom {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, RuntimeError) as exc:  # missing model weights, busy
        print(f"noteloom {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except _raw_storage_errors() as exc:  # an SQLite or OS error not met inside the notebook
        print(f"noteloom: {_storage_message(exc, settings.data_dir)}", file=sys.stderr)
        return EXIT_FAILED


# Evaluated only when an exception reaches them, so the CLI imports nothing heavy up front.
def _storage_error() -> type[BaseException]:
    from retrieval.errors import StorageError

    return StorageError


def _raw_storage_errors() -> tuple[type[BaseException], ...]:
    import sqlite3

    return sqlite3.DatabaseError, OSError


def _storage_message(exc: BaseException, folder) -> str:
    """A StorageError's own line; a raw SQLite or OS error that means damage or a
    full disk, translated; anything else is not a storage fault and goes on up."""
    from retrieval.integrity import translate

    mapped = translate(exc, folder)
    if mapped is None:
        raise exc
    return str(mapped)


if __name__ == "__main__":
    sys.exit(main())
