"""Rewrite the golden chunk files: python -m tests.golden.regen (review the diff!)."""

import json
from pathlib import Path

from tests.golden.cases import CASES, INPUTS, run_case

HERE = Path(__file__).parent

if __name__ == "__main__":
    for case_id, (name, params, input_name) in CASES.items():
        result = run_case(name, params, INPUTS[input_name]())
        (HERE / f"{case_id}.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(case_id, len(result["chunks"]), "chunks")
