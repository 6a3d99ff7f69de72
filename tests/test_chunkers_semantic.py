"""The semantic chunker with the real all-MiniLM-L6-v2 model (offline package)."""

import pytest

import chunkers
from tests.invariants import check_chunks

TRAINING = [
    "Training a LoRA for Stable Diffusion takes about 1500 steps at a learning rate of 1e-4.",
    "DreamBooth training for Stable Diffusion uses prior preservation images to avoid overfitting.",
    "Textual inversion training for Stable Diffusion learns a new token embedding from 3 to 5 images.",
]
BAKING = [
    "Sourdough bread needs a lively starter fed the night before baking.",
    "Knead the bread dough, then let it rise slowly in the fridge overnight.",
    "Bake the bread loaf in a hot Dutch oven so the crust turns deep brown.",
]


@pytest.fixture(scope="module")
def embedder():
    from runtime import get_embedder

    return get_embedder()


def test_default_model_loads_offline_with_384_dimensions(embedder):
    vectors = embedder(["a photo of a cat", "a picture of a kitten", "tax law"])
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_split_mode_cuts_where_the_topic_changes(embedder):
    text = " ".join(TRAINING) + " " + " ".join(BAKING)
    chunker = chunkers.get("semantic", max_tokens=200, threshold=0.25)
    chunks = chunker(text)
    assert [c.text for c in chunks] == [" ".join(TRAINING), " ".join(BAKING)]
    check_chunks(text, chunks, chunker)


def test_group_mode_joins_far_apart_sentences_on_one_topic(embedder):
    order = [TRAINING[0], BAKING[0], TRAINING[1], BAKING[1], TRAINING[2], BAKING[2]]
    text = "\n\n".join(order)
    chunker = chunkers.get("semantic", max_tokens=200, threshold=0.2, mode="group")
    chunks = chunker(text)
    check_chunks(text, chunks, chunker)
    assert len(chunks) == 2
    training_chunk, baking_chunk = chunks
    assert training_chunk.spans == tuple((text.index(t), text.index(t) + len(t)) for t in TRAINING)
    assert baking_chunk.text == "\n\n".join(BAKING)
    for a, b in training_chunk.spans:
        assert text[a:b] in training_chunk.text


def test_semantic_on_sample_notes_keeps_invariants(markdown_notes):
    chunker = chunkers.get("semantic", max_tokens=128, overlap=16)
    text = markdown_notes["chunking-semantic-hybrid.md"]
    check_chunks(text, chunker(text), chunker)
