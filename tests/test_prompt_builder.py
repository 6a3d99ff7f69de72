import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagegen import Passage, PromptBuilder, PromptError, format_pieces, parse, plain_text
from imagegen.emphasis import Piece
from runtime import ClipCounter

GOLDEN = json.loads((Path(__file__).parent / "golden" / "emphasis.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("text,expected", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_emphasis_golden(text, expected):
    got = [p if isinstance(p, str) else [p.text, p.weight] for p in parse(text)]
    assert got == expected
    # printed back and parsed again: same text, same weights (whitespace carries no weight)
    def words(pieces):
        return [p if isinstance(p, str) else (p.text.strip(), p.weight) for p in pieces if isinstance(p, str) or p.text.strip()]

    again = parse(format_pieces(parse(text)))
    assert words(again) == words(parse(text)) and plain_text(format_pieces(parse(text))) == plain_text(text)


@pytest.mark.parametrize("bad,needle", [("(cat", "unbalanced '(' opened at position 0"), ("cat)", "unbalanced ')' at position 3"),
                                        ("[cat)", "unbalanced ')'"), ("(cat]", "unbalanced ']'"),
                                        ("(x:1e9)", "emphasis weight 1e9 at position 2 is outside 0.0..3.0"), ("(x:-2)", "outside")])
def test_emphasis_errors(bad, needle):
    with pytest.raises(PromptError) as info:
        parse(bad)
    assert needle in str(info.value)


def test_plain_text_is_what_the_model_sees():
    assert plain_text("(masterpiece:1.2), ((castle)) BREAK [fog]") == "masterpiece, castle, fog"


NOTES = [
    Passage("### Lighting\n\n- golden hour: warm, low sunlight just after sunrise\n- rim light: a bright edge outlining the subject\n"
            "- volumetric lighting: light shafts through fog", "prompting.md", 100),
    Passage("### Camera\n\n- 85mm portrait lens: flattering for faces\n- shallow depth of field\n- wide-angle shot", "prompting.md", 400),
    Passage("### Styles\n\n- watercolor: soft edges, paper texture, colour bleeding\n- oil painting: visible brush strokes, rich colours",
            "prompting.md", 700),
    Passage("My default negative prompt:\n\ndeformed, bad anatomy, extra fingers, blurry, lowres, watermark\n", "negative.md", 0),
    Passage("Quality tags (masterpiece, best quality, highly detailed, sharp focus, 8k) help SD 1.5 most.", "quality.md", 0),
]


@pytest.fixture(scope="module")
def builder():
    return PromptBuilder()


@pytest.fixture(scope="module")
def count():
    return ClipCounter()


def test_draft_follows_the_notes_order_and_cites_them(builder, count):
    r = builder.build("portrait of an old fisherman, (weathered face:1.3), wool sweater", style="oil painting", passages=NOTES)
    phrases = [p.text for p in r.phrases]
    assert phrases[:5] == ["portrait of an old fisherman", "oil painting", "visible brush strokes", "rich colours", "weathered face"]
    assert "visible brush strokes" in phrases  # the named style expanded from its note
    assert "watercolor" not in phrases  # no second style mixed in
    sections = [p.section for p in r.phrases]
    order = ["subject", "style", "details", "lighting", "camera", "composition", "quality"]
    assert [order.index(s) for s in sections] == sorted(order.index(s) for s in sections)
    assert "(weathered face:1.3)" in r.prompt
    assert r.tokens["prompt"] == count(r.prompt_plain) <= 75
    for p in r.phrases:
        if p.origin == "notes":
            passage = next(n for n in NOTES if n.source == p.source and n.start <= p.start < n.end)
            assert passage.text[p.start - passage.start : p.end - passage.start] == p.text
    assert {c["source"] for c in r.context} <= {n.source for n in NOTES}
    assert r.negative_prompt.startswith("deformed, bad anatomy, extra fingers, blurry, lowres, watermark")


def test_compression_drops_least_important_and_reports_it(builder, count):
    idea = ("a lighthouse on a cliff, (stormy sea:1.4), crashing waves, seagulls, dark clouds, lightning in the distance, "
            "a small fishing boat, wet rocks, spray, moss")
    full = builder.build(idea, style="oil painting", passages=NOTES)
    small = builder.build(idea, style="oil painting", passages=NOTES, budget=20)
    assert small.tokens["prompt"] <= 20 and count(small.prompt_plain) == small.tokens["prompt"]
    kept = {p.text for p in small.phrases}
    assert "a lighthouse on a cliff" in kept and "stormy sea" in kept
    assert set(small.dropped).isdisjoint(kept) and small.dropped
    assert kept | set(small.dropped) == {p.text for p in full.phrases} | set(full.dropped)
    # quality tags go before the user's own details
    assert any(q in small.dropped for q in ("sharp focus", "highly detailed", "8k"))


def test_subject_over_budget_is_an_error_not_a_truncation(builder):
    with pytest.raises(PromptError, match="over the budget of 5"):
        builder.build("an extraordinarily long and detailed subject description that never ends", budget=5, passages=[])


@pytest.mark.parametrize("kwargs,needle", [
    (dict(idea=""), "idea must not be empty"), (dict(idea="   "), "must not be empty"), (dict(idea="!!! ,,, ???"), "idea has no words"),
    (dict(idea="a (cat"), "unbalanced"), (dict(idea="(cat:1e9)"), "outside"), (dict(idea="cat", budget=0), "budget must be an integer from 1 to 75"),
    (dict(idea="cat", budget=76), "got 76"), (dict(idea=None), "idea must be a string"), (dict(idea="cat", k=-1), "k must be"),
])
def test_bad_input_names_the_problem(builder, kwargs, needle):
    with pytest.raises(PromptError) as info:
        builder.build(passages=[], **kwargs)
    assert needle in str(info.value)


def test_non_english_and_emoji(builder, count):
    r = builder.build("一只在雪地里的红狐狸, 🦊 emoji fox, renard roux", passages=NOTES)
    assert r.phrases[0].text == "一只在雪地里的红狐狸" and r.tokens["prompt"] == count(r.prompt_plain) <= 75


def test_learned_tokens_count_as_one(builder):
    plain = ClipCounter()("a <cat-toy> on a shelf")
    learned = ClipCounter(["<cat-toy>"])("a <cat-toy> on a shelf")
    assert learned < plain and learned == ClipCounter()("a toy on a shelf")


def test_long_mode_splits_at_phrase_boundaries_and_breaks(builder, count):
    phrases = [f"detail number {i} with some extra words" for i in range(30)]
    idea = "a sprawling fantasy city, " + ", ".join(phrases[:12]) + " BREAK " + ", ".join(phrases[12:])
    r = builder.build(idea, passages=NOTES, long=True)
    assert r.dropped == [] and len(r.chunks) >= 3
    assert all(n <= 75 for n in r.chunk_tokens) and r.chunk_tokens == [count(plain_text(c)) for c in r.chunks]
    assert any(c.endswith(phrases[11]) for c in r.chunks)  # BREAK ended a chunk there
    joined = ", ".join(plain_text(c) for c in r.chunks)
    assert all(p in joined for p in phrases)
    assert r.negative_chunks and all(count(plain_text(c)) <= 75 for c in r.negative_chunks)


WORD = st.sampled_from(["cat", "castle", "neon", "(glow:1.2)", "[fog]", "日本", "🦊", "sunset", "rim", "light", "fisherman", "a", "of",
                        "the", "and", "very", "golden", "hour", "85mm", "watercolor", "((red))", "BREAK", "x" * 20])
IDEA = st.lists(st.lists(WORD, min_size=1, max_size=6).map(" ".join), min_size=1, max_size=12).map(", ".join)
NOTE_TEXT = st.lists(st.sampled_from([
    "- golden hour: warm light", "- rim light", "(bokeh, 35mm, f/1.8)", "deformed, bad anatomy, blurry, lowres",
    "- watercolor: soft edges, paper texture", "plain sentence about nothing.", "\"a cat, oil painting, dramatic lighting\"",
    "Quality: masterpiece, best quality, 8k, sharp focus", "- 日本 style: 漫画, anime",
]), min_size=0, max_size=6).map("\n".join)


@settings(max_examples=int(os.environ.get("NOTELOOM_HYPOTHESIS_EXAMPLES", 40)), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(idea=IDEA, notes=st.lists(NOTE_TEXT, max_size=3), budget=st.integers(8, 75), style=st.sampled_from([None, "watercolor", "(anime:1.1)"]))
def test_properties_fit_keep_subject_no_overlap_deterministic(builder, count, idea, notes, budget, style):
    passages = [Passage(t, f"n{i}.md", 0) for i, t in enumerate(notes)]
    try:
        r = builder.build(idea, style=style, passages=passages, budget=budget)
    except PromptError as exc:
        assert re.search(r"over the budget|no words", str(exc)), exc
        return
    assert r.tokens["prompt"] == count(r.prompt_plain) <= budget
    assert r.tokens["negative_prompt"] == count(r.negative_plain) <= 75
    assert count(plain_text(r.prompt)) == r.tokens["prompt"]  # the formatted prompt parses back to the same text
    subject = r.phrases[0]
    assert subject.section == "subject" and r.prompt_plain.startswith(subject.text)
    assert not set(r.dropped) & {p.text for p in r.phrases}
    assert all(p.weight == 1.0 or p.text not in r.dropped for p in r.phrases)
    again = builder.build(idea, style=style, passages=passages, budget=budget)
    assert again.to_dict() == r.to_dict()
