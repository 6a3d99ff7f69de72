"""generate_and_rank, the one generate -> score -> rank flow of the CLI and the API,
and imagegen's public surface as the service uses it."""

import ast
import threading
from pathlib import Path

import pytest

import imagegen
from imagegen import ClipScorer, DiffusersBackend, DiffusersSettings, GenerationRequest, Ranked, generate_and_rank
from imagegen.png import read_png_meta

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def backend(tiny_folder, tmp_path_factory):
    return DiffusersBackend(DiffusersSettings(model=str(tiny_folder), device="cpu"), gallery=tmp_path_factory.mktemp("gallery"))


def test_scored_images_come_back_best_first_with_the_score_in_each_png(backend, fitted_clip):
    name, weights, _ = fitted_clip
    steps = []
    ranked = generate_and_rank(backend, GenerationRequest("a red square", steps=2, seed=5, num_images=3), ClipScorer(name, weights),
                               progress=lambda done, total: steps.append((done, total)))
    scores = [g.score for g in ranked.images]
    assert sorted(g.seed for g in ranked.images) == [5, 6, 7] and scores == sorted(scores, reverse=True)
    assert ranked.result is not None and ranked.unscored is None and steps[-1] == (2, 2)
    assert sorted(ranked.result.scores, reverse=True) == scores
    assert ranked.scoring == {"model": name, "pretrained": weights, "convention": "100*max(cos(image,text),0)",
                              "prompt_seen": "a red square", "truncated": False, "dropped_text": ""}
    for g in ranked.images:
        assert read_png_meta(g.path)["clip_score"] == g.score


def test_a_scorer_without_weights_leaves_the_images_unscored_in_seed_order(backend, tmp_path):
    missing = ClipScorer("ViT-B-32", str(tmp_path / "no-such-weights.pt"))
    ranked = generate_and_rank(backend, GenerationRequest("a boat", steps=1, seed=1, num_images=2), missing)
    assert [g.seed for g in ranked.images] == [1, 2] and all(g.score is None for g in ranked.images)
    assert ranked.result is None and "is not an existing file" in ranked.unscored
    assert ranked.scoring == {"error": ranked.unscored}


def test_no_scorer_means_no_scoring_and_faults_still_propagate(backend):
    ranked = generate_and_rank(backend, GenerationRequest("a boat", steps=1, seed=1))
    assert isinstance(ranked, Ranked) and ranked.scoring is None and len(ranked.images) == 1

    class Broken:
        def score(self, images, prompt):
            raise RuntimeError("a fault, not a missing model")

    with pytest.raises(RuntimeError, match="a fault"):
        generate_and_rank(backend, GenerationRequest("a boat", steps=1, seed=1), Broken())
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(imagegen.Cancelled):
        generate_and_rank(backend, GenerationRequest("a boat", steps=2, seed=1), cancel=cancel)


def test_service_imports_imagegen_names_from_the_package_and_all_lists_them():
    imported = set()
    for path in sorted((ROOT / "service").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "imagegen":
                if node.module == "imagegen.testing":  # the demo's tiny random pipeline: a public test helper module
                    continue
                assert node.module == "imagegen", f"{path.name}:{node.lineno} imports from {node.module}; import from imagegen"
                imported |= {alias.name for alias in node.names}
    assert imported and imported <= set(imagegen.__all__), imported - set(imagegen.__all__)
    for name in imagegen.__all__:
        assert hasattr(imagegen, name), name
