"""The web page in headless Chromium (Debian's /usr/bin/chromium driven by Playwright)
against a real server on 127.0.0.1 with the sample notes, the tiny random Stable
Diffusion pipeline and the tiny fitted CLIP. What the page shows is compared with
what the API and the libraries answer for the same input.

Screenshots go to NOTELOOM_WEB_SCREENSHOTS when set (the README's come from there),
else to a temporary folder whose path is printed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

import chunkers
from tests.helpers import serve, stop

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]
API_KEY = "web-key-42"
NOTES = sorted((Path(__file__).resolve().parent.parent / "samples" / "notes").glob("*"))

@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_folder, fitted_clip):
    name, weights, folder = fitted_clip
    data = tmp_path_factory.mktemp("web-data")
    link = data.parent / "sd-model"  # a link, so that one test can take the model away
    link.symlink_to(tiny_folder, target_is_directory=True)
    proc, base = serve(data, {
        "NOTELOOM_API_KEY": API_KEY, "NOTELOOM_SD_MODEL": str(link), "NOTELOOM_CLIP_MODEL": name,
        "NOTELOOM_CLIP_PRETRAINED": weights, "NOTELOOM_CLIP_CONFIG_DIR": str(folder)})
    client = httpx.Client(base_url=base, headers={"X-API-Key": API_KEY}, timeout=120)
    client.sd_link, client.sd_folder = link, tiny_folder
    for path in NOTES:
        r = client.post("/documents", files={"file": (path.name, path.read_bytes())})
        assert r.status_code == 201, r.text
    yield client
    client.close()
    stop(proc)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("NOTELOOM_WEB_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "the browser tests need Debian's chromium: apt-get install chromium (.ci/run does)"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(str(server.base_url) + "/app/")
    page.fill("#api-key", API_KEY)
    page.click("#key-form button")
    page.wait_for_function("document.querySelector('#connection').textContent.includes('notes')")
    page.set_default_timeout(60_000)
    yield page
    base = str(server.base_url)
    assert all(url.startswith(base) or url.startswith("blob:") for url in requests), "the page reached outside the server"
    context.close()


def test_ask_then_citation_opens_the_note_with_the_cited_span_highlighted(page, server, shots):
    question = "What does the guidance scale do in classifier-free guidance?"
    expected = server.post("/ask", json={"question": question}).json()["citations"]
    assert expected
    page.fill("#question", question)
    page.click("#ask-form button")
    page.wait_for_selector("#citations li")
    assert page.locator("#citations .cited").all_text_contents() == [c["text"] for c in expected]
    page.locator("#citations .citation").nth(1 if len(expected) > 1 else 0).click()
    cited = expected[1 if len(expected) > 1 else 0]
    mark = page.wait_for_selector("#highlight")
    assert mark.text_content() == cited["text"]
    doc = server.get(f"/documents/{cited['doc_id']}").json()
    assert page.locator("#note-text").text_content() == doc["text"]
    assert page.evaluate("""() => { const r = document.querySelector('#highlight').getBoundingClientRect();
        const box = document.querySelector('#note-text').getBoundingClientRect();
        return r.top >= box.top - 1 && r.top < box.bottom; }"""), "the cited span is not scrolled into view"
    page.fill("#query", "LoRA rank")
    page.fill("#source-prefix", "uploads/sd-")
    page.click("#search-form button")
    page.wait_for_selector("#hits li .citation")
    sources = page.locator("#hits .citation").all_text_contents()
    assert sources and all(s.startswith("uploads/sd-") for s in sources)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / "ask.png"))


def test_prompt_builder_count_equals_the_api_count(page, server, shots):
    body = {"idea": "portrait of an old fisherman at dawn, (weathered face:1.3), soft rim light", "style": "oil painting",
            "budget": 75, "k": 5, "negative": True}
    expected = server.post("/prompts", json=body).json()
    page.click("#tab-prompt")
    page.fill("#style", body["style"])
    page.type("#idea", body["idea"], delay=2)  # typed: the debounced request answers the final text
    page.wait_for_function(f"document.querySelector('#prompt-text').textContent === {expected['prompt']!r}")
    assert page.text_content("#prompt-count") == f"{expected['tokens']['prompt']} / 75"
    assert page.text_content("#negative-count") == f"{expected['tokens']['negative_prompt']} / 75"
    assert page.locator("#prompt-rendered .w").first.text_content().startswith("weathered face")
    from_notes = [p for p in expected["phrases"] if p.get("source")]
    assert page.locator("#phrases .citation").count() == len(from_notes)
    if from_notes:
        page.locator("#phrases .citation").first.click()
        doc = next(d for d in server.get("/documents").json()["documents"] if d["source"] == from_notes[0]["source"])
        text = server.get(f"/documents/{doc['id']}").json()["text"]
        assert page.wait_for_selector("#highlight").text_content() == text[from_notes[0]["start"]:from_notes[0]["end"]]
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / "prompt.png"))


def test_generate_shows_the_gallery_in_score_order_and_reruns_a_seed(page, server, shots):
    ranked = server.post("/generate", json={"prompt": "a blue square", "steps": 2, "seeds": [40, 41, 42], "n": 3,
                                            "scheduler": "DDIM"}).json()["images"]
    page.click("#tab-generate")
    page.wait_for_selector("#scheduler option[value='DDIM']", state="attached")
    assert page.is_hidden("#model-notice")
    page.fill("#gen-prompt", "a blue square")
    page.fill("#steps", "2")
    page.fill("#seeds", "40, 41, 42")
    page.select_option("#scheduler", "DDIM")
    page.click("#generate-button")
    page.wait_for_function("document.querySelectorAll('#gallery li').length === 3")
    scores = [float(s) for s in page.locator("#gallery li").evaluate_all("items => items.map(i => i.dataset.score)")]
    seeds = page.locator("#gallery li").evaluate_all("items => items.map(i => Number(i.dataset.seed))")
    assert scores == sorted(scores, reverse=True) == [i["score"] for i in ranked]
    assert seeds == [i["seed"] for i in ranked] and sorted(seeds) == [40, 41, 42]
    assert page.locator("#gallery img").evaluate_all("imgs => imgs.every(i => i.complete && i.naturalWidth === 64)")
    assert page.evaluate("document.querySelector('#progress').value === document.querySelector('#progress').max")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / "generate.png"))
    page.locator("#gallery li button").nth(1).click()
    page.wait_for_function(f"document.querySelectorAll('#gallery li').length === 1 && document.querySelector('#gallery li').dataset.seed === '{seeds[1]}'")
    assert float(page.locator("#gallery li").get_attribute("data-score")) == scores[1]  # same seed, same image, same score


@pytest.mark.parametrize("method,params", [("recursive", {"max_tokens": 48, "overlap": 0}), ("hybrid", {"max_tokens": 64, "overlap": 16})])
def test_chunk_explorer_boundaries_equal_the_chunker_offsets(page, server, shots, method, params):
    doc = next(d for d in server.get("/documents").json()["documents"] if d["source"].endswith("chunking-recursive.md"))
    text = server.get(f"/documents/{doc['id']}").json()["text"]
    expected = chunkers.get(method, **params)(text)
    page.click("#tab-chunks")
    page.wait_for_selector(f"#chunk-doc option[value='{doc['id']}']", state="attached")
    page.select_option("#chunk-doc", str(doc["id"]))
    page.select_option("#chunk-method", method)
    for name, value in params.items():
        page.fill(f"#chunk-params [data-param='{name}']", str(value))
    page.click("#chunk-form button")
    page.wait_for_function(f"document.querySelectorAll('#chunk-list li').length === {len(expected)}")
    shown = page.locator("#chunk-list li").evaluate_all("items => items.map(i => [+i.dataset.start, +i.dataset.end, +i.dataset.tokens])")
    assert shown == [[c.start, c.end, c.token_count] for c in expected]
    badges = page.locator("#chunk-view .badge").all_text_contents()
    assert badges == [f"#{c.index} · {c.token_count} tok" for c in expected]
    segments = page.locator("#chunk-view .chunk").evaluate_all(
        "spans => spans.map(s => [+s.dataset.start, +s.dataset.end, s.textContent, s.dataset.chunks])")
    for start, end, content, covering in segments:
        assert content == text[start:end]
        assert covering.split() == [str(c.index) for c in expected if c.start <= start and c.end >= end]
    covered = {i for start, end, *_ in segments for i in range(start, end)}
    assert covered == {i for c in expected for i in range(c.start, c.end)}
    page.locator("#chunk-view").screenshot(path=str(shots / f"chunks-{method}.png"))


def test_keyboard_labels_and_phone_width(browser, server, shots):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    page = context.new_page()
    page.goto(str(server.base_url) + "/app/")
    page.fill("#api-key", API_KEY)
    page.press("#api-key", "Enter")
    page.wait_for_function("document.querySelector('#connection').textContent.includes('notes')")
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => !e.labels.length && !e.getAttribute('aria-label')).map(e => e.id || e.outerHTML)""")
    assert unlabelled == []
    page.focus("#tab-ask")
    page.keyboard.press("ArrowRight")
    assert page.is_visible("#view-notes") and page.is_hidden("#view-ask")
    assert page.evaluate("document.activeElement.id") == "tab-notes"
    page.wait_for_selector("#documents tbody tr")
    assert page.locator("#documents tbody tr").count() == len(NOTES)
    page.screenshot(path=str(shots / "notes-phone.png"))
    for tab in ("ask", "notes", "prompt", "generate", "chunks"):
        page.click(f"#tab-{tab}")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), f"{tab} scrolls sideways at phone width"
    context.close()



def test_without_a_model_the_page_says_what_to_set_and_the_rest_works(browser, server):
    """The configured model folder goes missing (the server's own check, no reload);
    the Generate view names the setting and asking still works."""
    link = server.sd_link
    link.unlink()
    try:
        context = browser.new_context()
        context.add_init_script(f"localStorage.setItem('noteloom-key', {API_KEY!r})")
        page = context.new_page()
        page.goto(str(server.base_url) + "/app/")
        page.click("#tab-generate")
        notice = page.wait_for_selector("#model-notice:not([hidden])")
        assert "Set NOTELOOM_SD_MODEL" in notice.text_content() and str(link) in notice.text_content()
        page.click("#tab-ask")
        page.fill("#question", "What is a LoRA rank?")
        page.click("#ask-form button")
        page.locator("#citations .citation").first.click()
        assert page.wait_for_selector("#highlight").text_content() == page.locator("#citations .cited").first.text_content()
        context.close()
    finally:
        link.symlink_to(server.sd_folder, target_is_directory=True)
