"""The tables of ``chunkers_bench.py``: a markdown report per corpus (written to
bench/results/) and a compact fixed-width table for the terminal.

Ratios are taken within one corpus of one run: × tiktoken against that run's
``tiktoken encode_ordinary`` row on the same text, × best peer against the
fastest peer row with the same overlap."""

from __future__ import annotations

SHORT_LIB = {"langchain-text-splitters": "langchain", "semantic-text-splitter": "text-splitter", "llama-index-core": "llama-index"}


def fmt(v, spec: str = ".1f", missing: str = "–") -> str:
    return missing if v is None else format(v, spec)


def references(rows: list[dict]) -> tuple[dict | None, dict]:
    """The tiktoken ``encode_ordinary`` row and, per overlap, the fastest peer row."""
    tik = next((r for r in rows if r["id"].startswith("tiktoken:encode_ordinary:") and "mb_s" in r), None)
    best_peer: dict = {}
    for r in rows:
        if r.get("lib") in ("tiktoken", "chunkers") or "mb_s" not in r:
            continue
        ov = r["overlap"]
        if ov not in best_peer or r["mb_s"] > best_peer[ov]["mb_s"]:
            best_peer[ov] = r
    return tik, best_peer


def ratios(r: dict, tik: dict | None, best_peer: dict) -> tuple[float | None, float | None]:
    x_tik = r["mb_s"] / tik["mb_s"] if tik else None
    bp = best_peer.get(r["overlap"])
    x_peer = r["mb_s"] / bp["mb_s"] if bp and r["lib"] != "tiktoken" else None
    return x_tik, x_peer


def notes_of(r: dict, best_peer: dict) -> list[str]:
    notes = []
    if r.get("note"):
        notes.append(r["note"])
    if best_peer.get(r["overlap"]) is r:
        notes.append("fastest peer")
    if r.get("over_budget"):
        notes.append(f"{r['over_budget']} chunks over the budget")
    if r.get("unlocated"):
        notes.append(f"{r['unlocated']} chunks not found in the text")
    if r.get("children_peak_mb"):
        notes.append(f"max worker RSS {r['children_peak_mb']:.0f} MB")
    if r.get("foreign_cpu_pct", 0) >= 10:
        notes.append(f"other processes used {r['foreign_cpu_pct']:.0f}% of the CPUs meanwhile")
    if not r.get("peak_exact", True):
        notes.append("peak from ru_maxrss")
    return notes


def overlap_label(r: dict) -> str:
    return "–" if r["overlap"] is None else str(r["overlap"])


def render(rows: list[dict], meta: dict) -> str:
    """The markdown table of one corpus."""
    tik, best_peer = references(rows)
    lines = [
        "| library | method | overlap | MB/s | × tiktoken | × best peer | peak MB | chunks | % mid-sentence | tokens p5 / p95 / max | notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        method = r["method"] + (f" (workers={r['workers']}, {meta['n_docs']} docs)" if "workers" in r else "")
        if "error" in r:
            lines.append(f"| {r['lib']} | {method} | {overlap_label(r)} | failed | | | | | | | {r['error']} |")
            continue
        x_tik, x_peer = ratios(r, tik, best_peer)
        toks = f"{r['tok_p5']} / {r['tok_p95']} / {r['tok_max']}" if "tok_max" in r else "–"
        lines.append(
            f"| {r['lib']} | {method} | {overlap_label(r)} | {r['mb_s']:.2f} | {fmt(x_tik, '.2f')} | {fmt(x_peer, '.2f')} | "
            f"{r['peak_mb']:.0f} | {fmt(r.get('n_chunks'), 'd')} | {fmt(r.get('mid_pct'), '.1f')} | {toks} | "
            f"{'; '.join(notes_of(r, best_peer))} |"
        )
    return "\n".join(lines)


def render_terminal(rows: list[dict], meta: dict) -> str:
    """The same rows as fixed-width text, narrow enough for a terminal."""
    tik, best_peer = references(rows)
    head = ("case", "ov", "MB/s", "×tiktoken", "×best peer", "peak MB", "chunks", "%mid", "tok max", "notes")
    table = [head]
    for r in rows:
        name = f"{SHORT_LIB.get(r['lib'], r['lib'])} {r['method']}" + (f" w={r['workers']}" if "workers" in r else "")
        if "error" in r:
            table.append((name, overlap_label(r), "failed", "", "", "", "", "", "", r["error"][:60]))
            continue
        x_tik, x_peer = ratios(r, tik, best_peer)
        notes = [n for n in notes_of(r, best_peer) if n != r.get("note")]  # the case's own note is long; the markdown has it
        table.append((
            name, overlap_label(r), f"{r['mb_s']:.2f}", fmt(x_tik, ".2f"), fmt(x_peer, ".2f"), f"{r['peak_mb']:.0f}",
            fmt(r.get("n_chunks"), "d"), fmt(r.get("mid_pct"), ".1f"), fmt(r.get("tok_max"), "d"), "; ".join(notes),
        ))
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    out = []
    for row in table:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:-1], widths[1:])]
        out.append("  ".join(cells + [row[-1]]).rstrip())
    title = f"== {meta['corpus']}: {meta['mb']:.1f} MB of bench/corpus/{meta['corpus']}.txt, {meta['max_tokens']} tokens cl100k"
    return title + "\n" + "\n".join(out)


def header(meta: dict) -> str:
    """The lines that say what was measured, where and with which versions (the same for every corpus)."""
    v = meta["versions"]
    libs = ", ".join(f"{k} {val}" for k, val in v.items())
    return (
        f"# chunkers benchmark\n\n"
        f"- date: {meta['date']}; host: {meta['host']}; 1-min load average {meta['load_start']:.2f} at the start"
        + (f", {meta['load_end']:.2f} at the end" if "load_end" in meta else "")
        + " (other work on the machine skews the timings; rows run while other processes were busy say so in their notes)\n"
        f"- corpora: {', '.join(meta['corpora'])}; budget: {meta['max_tokens']} tokens (cl100k_base), overlap 0 and {meta['overlap']} tokens; "
        f"MB/s = best of {meta['repeats']} runs (2 when a run takes > 20 s) after a warm-up"
        + (f", and the best of {meta['passes']} passes over all cases" if meta.get("passes", 1) > 1 else "")
        + ", MB = 10^6 bytes of UTF-8\n"
        f"- peak MB: growth of the case process's peak RSS over its RSS just before the run (text loaded, chunker built)\n"
        f"- versions: {libs}; chunkers source (sha256 of chunkers/*.py) {meta['source']}"
        + (f" — CHANGED during the run to {meta['source_changed']}: rows mix two versions" if meta.get("source_changed") else "")
        + "\n"
    )


def corpus_header(meta: dict) -> str:
    return (
        f"## {meta['corpus']}\n\n"
        f"- text: {meta['mb']:.1f} MB ({meta['chars']} chars) of bench/corpus/{meta['corpus']}.txt — {meta['sources']}; "
        f"batch rows: the same text as {meta['n_docs']} documents\n"
    )
