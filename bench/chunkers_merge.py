#!/usr/bin/env python3
"""Best-of-N across several runs of ``chunkers_bench.py`` on one machine.

    python3 bench/chunkers_merge.py bench/results/a.json bench/results/b.json --output bench/results/best.md

Per corpus and case id, the fastest row of all the runs is kept (the
tiktoken rows too), and the tables are printed and written as
``chunkers_bench.py`` writes them (``.md``, ``.txt``, ``.json`` beside
``--output``). Runs on a busy machine are merged this way to take the load out
of the ratios; merge only runs of the same chunkers source, text size and
settings: the script refuses runs whose source hash or corpus size differ.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import chunkers_report as report


def merge(runs: list[dict]) -> tuple[dict, dict]:
    first = runs[0]["meta"]
    for run in runs[1:]:
        if run["meta"]["source"] != first["source"]:
            sys.exit(f"chunkers_merge: runs of different chunkers sources ({first['source']} vs {run['meta']['source']})")
    corpora: dict[str, dict] = {}
    for run in runs:
        for name, result in run["corpora"].items():
            slot = corpora.setdefault(name, {"meta": result["meta"], "rows": {}})
            if slot["meta"]["chars"] != result["meta"]["chars"]:
                sys.exit(f"chunkers_merge: the {name} texts differ in size ({slot['meta']['chars']} vs {result['meta']['chars']} chars)")
            for row in result["rows"]:
                old = slot["rows"].get(row["id"])
                if old is None or "error" in old or ("error" not in row and row["mb_s"] > old["mb_s"]):
                    slot["rows"][row["id"]] = row
    meta = dict(first)
    meta["merged_runs"] = len(runs)
    meta["date"] = " / ".join(run["meta"]["date"] for run in runs)
    meta["load_start"] = min(run["meta"]["load_start"] for run in runs)
    meta.pop("load_end", None)
    return meta, {name: {"meta": c["meta"], "rows": list(c["rows"].values())} for name, c in corpora.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="chunkers.json files written by chunkers_bench.py")
    ap.add_argument("--output", type=Path, required=True, help="markdown report; .txt and .json go beside it")
    args = ap.parse_args(argv)
    runs = [json.loads(path.read_text(encoding="utf-8")) for path in args.runs]
    meta, corpora = merge(runs)
    head = report.header(meta) + f"- merged: the fastest row per case out of {len(runs)} runs ({', '.join(p.name for p in args.runs)})\n"
    terminal = "\n\n".join(report.render_terminal(c["rows"], c["meta"]) for c in corpora.values())
    sections = [report.corpus_header(c["meta"]) + "\n" + report.render(c["rows"], c["meta"]) + "\n" for c in corpora.values()]
    print(terminal)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(head + "\n" + "\n".join(sections), encoding="utf-8")
    args.output.with_suffix(".txt").write_text(head + "\n" + terminal + "\n", encoding="utf-8")
    args.output.with_suffix(".json").write_text(json.dumps({"meta": meta, "corpora": corpora}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
