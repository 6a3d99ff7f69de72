import json
from pathlib import Path

import pytest

from tests.golden.cases import CASES, INPUTS, run_case

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_matches_golden_file(case_id):
    name, params, input_name = CASES[case_id]
    expected = json.loads((GOLDEN / f"{case_id}.json").read_text(encoding="utf-8"))
    assert run_case(name, params, INPUTS[input_name]()) == expected, "regenerate with python -m tests.golden.regen after an intended change"
