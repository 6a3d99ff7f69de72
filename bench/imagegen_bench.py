"""Image generation benchmarks on the CPU with the tiny random Stable Diffusion
pipeline (imagegen.testing): end-to-end time, noteloom's overhead around the bare
diffusers call, CLIP scoring throughput with the tiny open_clip model, and
NOTELOOM_THREADS=1 vs 2.

    .venv/bin/python bench/imagegen_bench.py
    .venv/bin/python bench/imagegen_bench.py --only overhead --reps 40

The tiny models make noise, not pictures: these figures measure noteloom's code
paths and the per-call costs around the model, not what a real SD model costs.
Prints a markdown report and writes it to bench/results/imagegen_bench.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as B  # noqa: E402

SECTIONS = ("e2e", "overhead", "score", "threads")
PROMPT = "a lighthouse on a cliff at dusk, oil painting, dramatic clouds, warm light, highly detailed"
SIDE = 64
STEPS = 4


def backend_for(folder: Path):
    from imagegen import DiffusersBackend, DiffusersSettings

    return DiffusersBackend(DiffusersSettings(model=str(folder), device="cpu"), gallery=None)


def request(n: int, seed: int = 1):
    from imagegen import GenerationRequest

    return GenerationRequest(PROMPT, steps=STEPS, seed=seed, num_images=n, width=SIDE, height=SIDE)


def e2e_times(backend, reps: int) -> dict:
    out = {}
    for n in (1, 4):
        backend.generate(request(n))  # warm-up
        best, med, _ = B.best_of(lambda n=n: backend.generate(request(n)), reps)
        out[n] = {"best": best, "median": med}
    return out


# --- sections -----------------------------------------------------------------------------


def bench_e2e(folder: Path, report: list[str], reps: int) -> None:
    import torch

    meter = B.LoadMeter()
    t0 = time.perf_counter()
    backend = backend_for(folder)
    backend.pipeline
    load_s = time.perf_counter() - t0
    res = e2e_times(backend, reps)
    load = meter.stop()
    rows = [[n, f"{r['best'] * 1000:.1f}", f"{r['median'] * 1000:.1f}", f"{n / r['best']:.1f}"] for n, r in res.items()]
    report += [
        "## End-to-end generation (tiny model, CPU)",
        "",
        f"`DiffusersBackend(DiffusersSettings(model=tiny folder)).generate(GenerationRequest(prompt, steps={STEPS}, seed=1, "
        f"num_images=N, width={SIDE}, height={SIDE}))`, gallery=None, no scoring; best and median of {reps} after a warm-up. "
        f"Loading the pipeline (from_pretrained, offline): {load_s:.2f}s. torch threads: {torch.get_num_threads()}.",
        "",
        B.table(["images", "best ms", "median ms", "images/s (best)"], rows),
        "",
        f"Load during this section: {load}",
        "",
    ]


def bench_overhead(folder: Path, report: list[str], reps: int) -> None:
    import numpy as np
    import torch

    backend = backend_for(folder)
    pipe = backend.pipeline
    guidance = backend.defaults().guidance_scale

    def bare():
        return pipe(PROMPT, num_inference_steps=STEPS, guidance_scale=guidance, width=SIDE, height=SIDE,
                    generator=torch.Generator().manual_seed(1), output_type="pil").images

    def ours():
        return [g.image for g in backend.generate(request(1))]

    for _ in range(3):  # warm-up both paths
        bare()
        ours()
    meter = B.LoadMeter()
    t_bare, t_ours = [], []
    for i in range(reps):  # interleaved, alternating which goes first
        order = (bare, ours) if i % 2 == 0 else (ours, bare)
        for fn in order:
            t0 = time.perf_counter()
            fn()
            (t_bare if fn is bare else t_ours).append(time.perf_counter() - t0)
    load = meter.stop()
    a = np.asarray(bare()[0], dtype=np.int16)
    b = np.asarray(ours()[0], dtype=np.int16)
    pixel_diff = int(np.abs(a - b).max())
    med_bare, med_ours = B.median(t_bare), B.median(t_ours)
    overhead = med_ours / med_bare - 1
    # the pieces the backend adds, timed alone
    from imagegen.conditioning import prompt_embeddings

    t_cond = B.best_of(lambda: prompt_embeddings(PROMPT, "", pipe.tokenizer, pipe.text_encoder, pipe.device), 50)[1]
    t_enc = B.best_of(lambda: pipe.encode_prompt(PROMPT, "cpu", 1, True, None), 50)[1]
    t_defaults = B.best_of(lambda: (backend.defaults(), backend.single_text_encoder), 200)[1]
    report += [
        "## Backend overhead around the bare diffusers call",
        "",
        f"The same pipeline object: bare `pipe(prompt, num_inference_steps={STEPS}, guidance_scale={guidance}, width={SIDE}, "
        f"height={SIDE}, generator=torch.Generator().manual_seed(1), output_type='pil')` vs `DiffusersBackend.generate` with the "
        f"same settings (1 image, gallery=None, no scoring). {reps} interleaved calls each after 3 warm-ups; medians. "
        f"Largest pixel difference between the two images: {pixel_diff} (0-255).",
        "",
        B.table(["call", "median ms", "p10 ms", "p90 ms", "overhead", "target <= 5%"], [
            ["bare pipe(...)", f"{med_bare * 1000:.2f}", f"{B.pct(t_bare, 10) * 1000:.2f}", f"{B.pct(t_bare, 90) * 1000:.2f}", "", ""],
            ["DiffusersBackend.generate", f"{med_ours * 1000:.2f}", f"{B.pct(t_ours, 10) * 1000:.2f}", f"{B.pct(t_ours, 90) * 1000:.2f}",
             f"{overhead * 100:+.1f}%", "PASS" if overhead <= 0.05 else "MISS"],
        ]),
        "",
        f"Pieces, timed alone (median): noteloom's prompt conditioning (`prompt_embeddings`, positive + empty negative) "
        f"{t_cond * 1000:.2f} ms vs diffusers' own `encode_prompt` (with classifier-free guidance) {t_enc * 1000:.2f} ms; "
        f"`defaults()` + `single_text_encoder` {t_defaults * 1e6:.0f} µs.",
        "",
        f"Load during this section: {load}",
        "",
    ]
    if overhead > 0.05:
        for name, fn in (("DiffusersBackend.generate", ours), ("bare pipe(...)", bare)):
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(20):
                fn()
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(14)
            lines = [line for line in out.getvalue().splitlines() if line.strip()]
            start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
            report += [f"Overhead above target; cProfile of 20 calls of {name} (by own time):", "", "```", *lines[start:], "```", ""]


def bench_score(folder: Path, work: Path, report: list[str], batches: int) -> None:
    from imagegen import ClipScorer
    from imagegen.testing import register_tiny_clip

    backend = backend_for(folder)
    images = [g.image for g in backend.generate(request(8))]
    name = register_tiny_clip(work / "clip")
    scorer = ClipScorer(name, None, device="cpu")
    t0 = time.perf_counter()
    scorer.score(images, PROMPT)
    first = time.perf_counter() - t0
    for _ in range(3):
        scorer.score(images, PROMPT)
    meter = B.LoadMeter()
    best, med, times = B.best_of(lambda: scorer.score(images, PROMPT), batches)
    load = meter.stop()
    long_prompt = ", ".join([PROMPT] * 4)
    _, med_long, _ = B.best_of(lambda: scorer.score(images, long_prompt), max(5, batches // 3))
    report += [
        "## CLIP scoring throughput (tiny open_clip model)",
        "",
        f"`ClipScorer('{name}', None).score(8 images, prompt)` on {SIDE}x{SIDE} images from the tiny pipeline; "
        f"{batches} batches of 8 after 3 warm-ups. First call (model creation): {first:.2f}s.",
        "",
        B.table(["prompt", "median ms / batch of 8", "best ms", "images/s (median)", "images/s (best)"], [
            [f"{len(PROMPT)} chars (fits 75 tokens)", f"{med * 1000:.1f}", f"{best * 1000:.1f}", f"{8 / med:,.0f}", f"{8 / best:,.0f}"],
            [f"{len(long_prompt)} chars (over 75 tokens: visible_text searches the cut)", f"{med_long * 1000:.1f}", "", f"{8 / med_long:,.0f}", ""],
        ]),
        "",
        f"Load during this section: {load}",
        "",
    ]


def threads_worker(folder: str, reps: int) -> None:
    import torch

    backend = backend_for(Path(folder))
    res = e2e_times(backend, reps)
    print(json.dumps({"threads": torch.get_num_threads(), "res": {str(k): v for k, v in res.items()}}))


def bench_threads(folder: Path, report: list[str], reps: int, max_wait: float) -> None:
    quiet = B.wait_for_quiet(max_wait=max_wait)
    meter = B.LoadMeter()
    runs: dict[str, list[dict]] = {}
    for threads in ("1", "2", "1", "2"):
        res = B.run_json([__file__, "--threads-worker", str(folder), "--reps", str(reps)], env={"NOTELOOM_THREADS": threads})
        B.log(f"[threads] {threads}: {res}")
        runs.setdefault(threads, []).append(res)
    load = meter.stop()
    rows = []
    for threads, results in runs.items():
        b1 = min(r["res"]["1"]["best"] for r in results)
        b4 = min(r["res"]["4"]["best"] for r in results)
        rows.append([threads, results[0]["threads"], f"{b1 * 1000:.1f}", f"{b4 * 1000:.1f}", f"{4 / b4:.1f}"])
    report += [
        "## NOTELOOM_THREADS=1 vs 2 (tiny pipeline)",
        "",
        f"Each run in a fresh subprocess (OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}); two runs per setting, "
        f"alternating; best of {reps} generations after a warm-up, the better run counts.",
        "",
        B.table(["NOTELOOM_THREADS", "torch threads", "1 image best ms", "4 images best ms", "images/s (4)"], rows),
        "",
        f"Machine before the section: {quiet}. Load during it: {load}",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--reps", type=int, default=5, help="timed generations per case (end to end, threads)")
    parser.add_argument("--overhead-reps", type=int, default=30)
    parser.add_argument("--score-batches", type=int, default=30)
    parser.add_argument("--max-wait", type=float, default=600)
    parser.add_argument("--threads-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads_worker:
        threads_worker(args.threads_worker, args.reps)
        return
    only = B.sections(args.only)
    report = B.start("imagegen_bench", args.max_wait)
    from imagegen.testing import save_tiny_sd

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = save_tiny_sd(work / "tiny-sd")
        if "e2e" in only:
            bench_e2e(folder, report, args.reps)
        if "overhead" in only:
            bench_overhead(folder, report, args.overhead_reps)
        if "score" in only:
            bench_score(folder, work, report, args.score_batches)
        if "threads" in only:
            bench_threads(folder, report, args.reps, args.max_wait)
    report.append(f"At the end of the run: {B.code_version()} (a different hash means the code changed during the run).")
    text = "\n".join(report)
    print(text)
    B.log(f"written to {B.write_results('imagegen_bench', text)}")


if __name__ == "__main__":
    main()
