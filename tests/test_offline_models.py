"""Offline by construction: with no weights on the machine, the CLIP scorer and the
diffusers backend fail with ModelNotFoundError at once, without opening a socket,
and remember the failure until the settings or the files they point at change.

Every test here runs with the hub libraries *online* as far as the environment is
concerned (``huggingface_hub.constants.HF_HUB_OFFLINE`` forced to False), so what
keeps them offline is noteloom's own code, and any socket connect or DNS lookup
fails the test."""

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from imagegen import generate as generate_module
from imagegen import score as score_module
from imagegen.errors import ModelNotFoundError
from imagegen import ClipScorer, ClipSettings, DiffusersBackend, DiffusersSettings, GenerationRequest
from imagegen.offline import hub_offline
from service import wiring
from service.settings import load_settings
from tests.conftest import colour

FAST = 2.0  # seconds: far below any network timeout, far above a few stat calls


@pytest.fixture(autouse=True)
def warm_imports():
    """Import the heavy libraries first: the timings below are of the calls, not of
    importing torch once per process."""
    import diffusers  # noqa: F401
    import open_clip  # noqa: F401
    import torch  # noqa: F401


@pytest.fixture
def no_network(monkeypatch):
    """Any connect or name lookup raises and is recorded; the hub is 'online'."""
    from huggingface_hub import constants

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:2] or args[:1])
        raise OSError("network access attempted in a test that forbids it")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return attempts


def counting(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


def timed_failure(call, *needles):
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as info:
        call()
    elapsed = time.perf_counter() - started
    for needle in needles:
        assert needle in str(info.value)
    return elapsed


def fake_hub_cache(root: Path, repo: str, files: dict[str, bytes | Path]) -> Path:
    """A Hugging Face cache holding ``files`` of ``repo`` (the layout huggingface_hub writes)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = root / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / commit
    for name, content in files.items():
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path) and content.is_dir():
            shutil.copytree(content, target)
        elif isinstance(content, Path):
            shutil.copy(content, target)
        else:
            target.write_bytes(content)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    return snapshot


# --- CLIP --------------------------------------------------------------------


def test_clip_tag_not_cached_fails_fast_offline_and_is_remembered(no_network, monkeypatch, tmp_path):
    loads = counting(monkeypatch, score_module, "load_open_clip")
    scorer = ClipScorer("ViT-B-32", "openai", cache_dir=str(tmp_path / "empty-cache"))
    score = lambda: scorer.score([Image.new("RGB", (64, 64))], "a cat")  # noqa: E731
    first = timed_failure(score, "not available offline", "NOTELOOM_CLIP_PRETRAINED", "NOTELOOM_ALLOW_DOWNLOADS=1",
                          "timm/vit_base_patch32_clip_224.openai")
    again = timed_failure(score, "NOTELOOM_CLIP_PRETRAINED")
    assert first < FAST and again < FAST
    assert len(loads) == 1  # the second call replayed the failure
    assert no_network == []


def test_clip_missing_file_is_remembered_until_the_file_appears(no_network, monkeypatch, tmp_path, fitted_clip):
    name, weights, _ = fitted_clip
    loads = counting(monkeypatch, score_module, "load_open_clip")
    target = tmp_path / "clip.pt"
    scorer = ClipScorer(name, str(target))
    score = lambda: scorer.score([colour((20, 20, 220)), colour((220, 20, 20))], "a red square")  # noqa: E731
    assert timed_failure(score, "NOTELOOM_CLIP_PRETRAINED=", "is not an existing file") < FAST
    assert timed_failure(score, "is not an existing file") < FAST
    assert len(loads) == 1
    shutil.copy(weights, target)  # the configuration changed: the next call loads
    assert score().order == [1, 0] and len(loads) == 2
    assert no_network == []


def test_clip_unknown_tag_and_model_name_the_choices(no_network):
    with pytest.raises(ModelNotFoundError, match="neither a pretrained tag of ViT-B-32 .*openai"):
        ClipScorer("ViT-B-32", "no-such-tag").score([Image.new("RGB", (64, 64))], "a cat")
    with pytest.raises(ModelNotFoundError, match="unknown CLIP model NOTELOOM_CLIP_MODEL='ViT-Q-99'"):
        ClipScorer("ViT-Q-99", None).score([Image.new("RGB", (64, 64))], "a cat")
    assert no_network == []


def test_clip_tag_found_in_the_cache_without_a_request(no_network, tmp_path):
    import open_clip

    fake_hub_cache(tmp_path, "timm/vit_base_patch32_clip_224.openai", {"open_clip_model.safetensors": b"weights"})
    watched: list[str] = []
    path, preprocess = score_module.tag_weights(open_clip, ClipSettings("ViT-B-32", "openai", cache_dir=str(tmp_path)), watched)
    assert path.endswith("open_clip_model.safetensors") and Path(path).read_bytes() == b"weights"
    assert preprocess["image_mean"] == (0.48145466, 0.4578275, 0.40821073)
    assert no_network == []


def test_clip_hf_hub_model_loads_from_the_cache(no_network, tmp_path, fitted_clip):
    import torch

    from imagegen.testing import TINY_CLIP_CONFIG

    name, weights, _ = fitted_clip
    state = torch.load(weights, weights_only=True)
    blob = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(state, blob)
    config = ('{"model_cfg": %s, "preprocess_cfg": {}}' % __import__("json").dumps(TINY_CLIP_CONFIG)).encode()
    fake_hub_cache(tmp_path / "hub", "noteloom/tiny-clip", {"open_clip_config.json": config, "open_clip_pytorch_model.bin": blob})
    images, prompt = [colour((20, 20, 220)), colour((220, 20, 20))], "a red square"
    cached = ClipScorer("hf-hub:noteloom/tiny-clip", None, cache_dir=str(tmp_path / "hub")).score(images, prompt)
    direct = ClipScorer(name, weights).score(images, prompt)
    assert cached.scores == direct.scores and cached.order == [1, 0]
    missing = ClipScorer("hf-hub:noteloom/not-cached", None, cache_dir=str(tmp_path / "hub"))
    with pytest.raises(ModelNotFoundError, match="not in the Hugging Face cache"):
        missing.score(images, prompt)
    assert no_network == []


# --- diffusers ---------------------------------------------------------------


def test_diffusers_hub_id_not_cached_fails_fast_offline_and_is_remembered(no_network, monkeypatch, tmp_path):
    loads = counting(monkeypatch, generate_module, "load_pipeline")
    backend = DiffusersBackend(DiffusersSettings(model="someone/not-cached-model", cache_dir=str(tmp_path)))
    first = timed_failure(lambda: backend.pipeline, "in the local Hugging Face cache", "NOTELOOM_SD_MODEL", "NOTELOOM_ALLOW_DOWNLOADS=1")
    again = timed_failure(lambda: backend.generate(GenerationRequest("a cat", steps=2)), "NOTELOOM_SD_MODEL")
    assert first < FAST and again < FAST
    assert len(loads) == 1
    assert no_network == []


def test_diffusers_hub_id_in_the_cache_loads_offline(no_network, tmp_path, tiny_folder):
    fake_hub_cache(tmp_path, "noteloom/tiny-sd", {".": tiny_folder})
    request = GenerationRequest("a lighthouse", steps=2, seed=3)
    cached = DiffusersBackend(DiffusersSettings(model="noteloom/tiny-sd", cache_dir=str(tmp_path), device="cpu"))
    folder = DiffusersBackend(DiffusersSettings(model=str(tiny_folder), device="cpu"))
    assert cached.generate(request)[0].image.tobytes() == folder.generate(request)[0].image.tobytes()
    assert no_network == []


def test_diffusers_missing_folder_is_remembered_until_it_appears(no_network, monkeypatch, tmp_path, tiny_folder):
    loads = counting(monkeypatch, generate_module, "load_pipeline")
    target = tmp_path / "sd"
    backend = DiffusersBackend(DiffusersSettings(model=str(target), device="cpu"))
    assert timed_failure(lambda: backend.pipeline, "NOTELOOM_SD_MODEL") < FAST
    assert timed_failure(lambda: backend.pipeline, "NOTELOOM_SD_MODEL") < FAST
    assert len(loads) == 1
    shutil.copytree(tiny_folder, target)
    assert backend.generate(GenerationRequest("a boat", steps=1, seed=1))[0].image.size == (64, 64)
    assert len(loads) == 2
    assert no_network == []


def test_weights_that_are_there_but_unusable_are_a_named_model_error(no_network, tmp_path, fitted_clip, tiny_folder):
    name, _, _ = fitted_clip
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not weights")
    with pytest.raises(ModelNotFoundError, match=r"could not be loaded offline \(.*\)\. Set NOTELOOM_CLIP_PRETRAINED"):
        ClipScorer(name, str(broken)).score([colour((1, 2, 3))], "a cat")
    folder = tmp_path / "sd"
    shutil.copytree(tiny_folder, folder)
    for weights in (folder / "unet").glob("*.safetensors"):
        weights.write_bytes(b"truncated")
    with pytest.raises(ModelNotFoundError, match=f"could be loaded from {folder}"):
        DiffusersBackend(DiffusersSettings(model=str(folder), device="cpu")).pipeline
    assert no_network == []


def test_downloads_are_off_unless_the_setting_says_so(monkeypatch):
    monkeypatch.delenv("NOTELOOM_ALLOW_DOWNLOADS", raising=False)
    assert not DiffusersSettings().allow_downloads and not ClipSettings().allow_downloads
    settings = load_settings()
    assert not wiring.diffusers_settings(settings).allow_downloads and not wiring.clip_settings(settings).allow_downloads
    monkeypatch.setenv("NOTELOOM_ALLOW_DOWNLOADS", "1")
    settings = load_settings()
    assert wiring.diffusers_settings(settings).allow_downloads and wiring.clip_settings(settings).allow_downloads


def test_hub_offline_blocks_requests_and_restores_the_switch(no_network):
    from huggingface_hub import constants, hf_hub_download

    started = time.perf_counter()
    with hub_offline():
        with pytest.raises(Exception) as info:
            hf_hub_download("someone/some-model", "config.json")
        assert constants.HF_HUB_OFFLINE is True
    assert "offline" in str(info.value).lower() or "cache" in str(info.value).lower()
    assert time.perf_counter() - started < FAST and no_network == []
    assert constants.HF_HUB_OFFLINE is False
    with hub_offline(False):
        assert constants.HF_HUB_OFFLINE is False


def test_hub_offline_overlapping_threads_keep_it_on_until_the_last_leaves(no_network):
    from huggingface_hub import constants

    inside, leave, seen = threading.Barrier(3), threading.Event(), []

    def hold(wait):
        with hub_offline():
            inside.wait(5)
            if wait:
                leave.wait(5)
            seen.append(constants.HF_HUB_OFFLINE)

    threads = [threading.Thread(target=hold, args=(w,)) for w in (False, True)]
    for t in threads:
        t.start()
    inside.wait(5)
    threads[0].join(5)
    assert constants.HF_HUB_OFFLINE is True  # one load still runs
    leave.set()
    threads[1].join(5)
    assert seen == [True, True] and constants.HF_HUB_OFFLINE is False
