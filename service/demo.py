"""`make demo`: run noteloom on the bundled sample notes."""

from __future__ import annotations

import warnings
from pathlib import Path

import chunkers

from . import wiring
from .settings import Settings, load_settings

NOTES = Path(__file__).resolve().parent.parent / "samples" / "notes"


def chunk_demo() -> None:
    note = NOTES / "chunking-recursive.md"
    text = note.read_text(encoding="utf-8")
    print(f"# Chunking {note.name} ({len(text)} characters) with every method, 128 tokens\n")
    for name in chunkers.available():
        params = {"max_tokens": 128}
        if name == "hybrid":
            params["overlap"] = 32
        chunks = chunkers.get(name, **params)(text)
        sizes = [c.token_count for c in chunks]
        first = chunks[0]
        print(f"{name:>10}: {len(chunks):3d} chunks, tokens mean {sum(sizes) / len(sizes):5.1f} max {max(sizes):3d}; "
              f"chunk 0 = [{first.start}:{first.end}] {first.text[:50]!r}")


QUESTIONS = [
    "How many training steps does DreamBooth need?",
    "Why does CLIP cut my long prompt off?",
]


def rag_demo(settings: Settings) -> None:
    from ingest import Ingestor

    data_dir = settings.data_dir
    nb = wiring.notebook(settings)
    report = Ingestor(nb, progress=True, limits=wiring.load_limits(settings)).ingest_paths([NOTES])
    print(f"\n# Ingested {NOTES} into {data_dir}: {report.summary()}")
    status = nb.status()
    print(f"  {status['documents']} documents, {status['chunks']} chunks, {status['index']['kind']} index, "
          f"embedding {status['embedding']['model']} ({status['embedding']['dim']}-d)")
    for question in QUESTIONS:
        answer = nb.ask(question)
        print(f"\nQ: {question}\nA: {answer.answer}")
        for i, c in enumerate(answer.citations, start=1):
            print(f"   [{i}] {c.source} [{c.start}:{c.end}]")
    prompt_demo(nb)
    generation_demo(nb, settings)
    print(f"\nServe it:   .venv/bin/noteloom --data {data_dir} serve --port 8000")
    print('Then:       curl -s localhost:8000/ask -H "content-type: application/json" '
          '-d \'{"question": "What is reciprocal rank fusion?"}\'')
    print("OpenAPI:    http://127.0.0.1:8000/schema")


IDEAS = [
    ("portrait of an old fisherman, (weathered face:1.3), wool sweater, harbour in the background", "oil painting", 75),
    ("a lighthouse on a cliff, (stormy sea:1.4), crashing waves, seagulls, dark clouds, a small fishing boat", "watercolor", 24),
]


def prompt_demo(nb) -> None:
    from imagegen import PromptBuilder

    builder = PromptBuilder(nb)
    for idea, style, budget in IDEAS:
        r = builder.build(idea, style=style, budget=budget)
        print(f"\n# Prompt for: {idea!r} (style {style!r}, budget {budget} CLIP tokens)")
        print(f"  prompt   ({r.tokens['prompt']} tokens): {r.prompt}")
        print(f"  negative ({r.tokens['negative_prompt']} tokens): {r.negative_prompt}")
        if r.dropped:
            print(f"  dropped to fit: {'; '.join(r.dropped)}")
        for c in r.context:
            print(f"  from {c['source']} [{c['start']}:{c['end']}]")


def generation_demo(nb, settings: Settings) -> None:
    """With NOTELOOM_SD_MODEL set, generate with it; otherwise run the same code on a
    tiny random pipeline (its images are noise: it shows the path, not the art)."""
    from imagegen import GenerationRequest, PromptBuilder
    from imagegen.testing import save_tiny_sd

    data_dir = settings.data_dir
    random_stand_in = not settings.sd_model
    if random_stand_in:
        model = str(save_tiny_sd(data_dir / "tiny-random-sd"))
        label = "a tiny RANDOM pipeline (no NOTELOOM_SD_MODEL set; images are noise)"
    else:
        model = label = settings.sd_model
    built = PromptBuilder(nb).build(IDEAS[0][0], style=IDEAS[0][1])
    request = GenerationRequest(built.prompt, built.negative_prompt, steps=4 if random_stand_in else None, seed=1234, num_images=2)
    with warnings.catch_warnings():
        if random_stand_in:  # random weights can give NaN pixels, which numpy warns about when casting
            warnings.filterwarnings("ignore", "invalid value encountered in cast", RuntimeWarning)
        images = wiring.diffusers_backend(settings, data_dir / "gallery", model=model).generate(request)
    print(f"\n# Generated with {label}")
    for g in images:
        print(f"  {g.path}  seed {g.seed}, {g.params['steps']} steps, {g.params['seconds']}s")


def main() -> None:
    settings = load_settings()
    wiring.configure_runtime(settings)
    chunk_demo()
    rag_demo(settings)


if __name__ == "__main__":
    main()
