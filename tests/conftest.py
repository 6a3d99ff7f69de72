import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
NOTES = ROOT / "samples" / "notes"


@pytest.fixture(scope="session")
def notes_dir() -> Path:
    return NOTES


@pytest.fixture(scope="session")
def markdown_notes() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(NOTES.glob("*.md"))}


def colour(rgb):
    from PIL import Image

    return Image.new("RGB", (64, 64), rgb)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """A tiny random Stable Diffusion pipeline saved in diffusers format."""
    from imagegen.testing import save_tiny_sd

    return save_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd")


@pytest.fixture(scope="session")
def fitted_clip(tmp_path_factory):
    """The tiny open_clip model fitted for a few steps to tell red from blue:
    (model name, weights file, config folder)."""
    import open_clip
    import torch

    from imagegen.testing import register_tiny_clip

    folder = tmp_path_factory.mktemp("clip")
    name = register_tiny_clip(folder)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None)
    tokenizer = open_clip.get_tokenizer(name)
    images = torch.stack([preprocess(colour((220, 20, 20))), preprocess(colour((20, 20, 220)))])
    texts = tokenizer(["a red square", "a blue square"])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    labels = torch.arange(2)
    for _ in range(40):
        img = torch.nn.functional.normalize(model.encode_image(images), dim=-1)
        txt = torch.nn.functional.normalize(model.encode_text(texts), dim=-1)
        logits = 10 * img @ txt.T
        loss = torch.nn.functional.cross_entropy(logits, labels) + torch.nn.functional.cross_entropy(logits.T, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    path = folder / "tiny-clip.pt"
    torch.save(model.state_dict(), path)
    return name, str(path), folder
