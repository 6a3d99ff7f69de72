"""Only ``noteloom serve`` loads the web framework: every other command runs, for
real, in one fresh interpreter, which then holds no litestar or uvicorn module."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("litestar", "uvicorn")

CHILD = r"""
import json, sys
from service.cli import main

seen = {}
for argv in json.loads(sys.argv[1]):
    code = main(argv)
    loaded = sorted({m.split(".")[0] for m in sys.modules} & {"litestar", "uvicorn"})
    seen[argv[2]] = {"exit": code, "frameworks": loaded}
print(json.dumps(seen))
"""


def test_no_command_but_serve_imports_a_web_framework(tmp_path, notes_dir):
    from PIL import Image

    image = tmp_path / "red.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(image)
    note = notes_dir / "sd-prompting-basics.md"
    data = ["--data", str(tmp_path / "data")]
    commands = [
        [*data, "config"], [*data, "chunk", str(note)], [*data, "ingest", str(note)], [*data, "search", "prompt weights"],
        [*data, "ask", "What does BREAK do?"], [*data, "status"], [*data, "repair"], [*data, "prompt", "a lighthouse"],
        [*data, "score", str(image), "--prompt", "red"], [*data, "generate", "a red square", "--steps", "1"],
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "NOTELOOM_SD_MODEL": str(tmp_path / "no-sd"),
           "NOTELOOM_CLIP_PRETRAINED": str(tmp_path / "no-clip.pt")}
    run = subprocess.run([sys.executable, "-c", CHILD, json.dumps(commands)], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(seen) == {argv[2] for argv in commands}
    assert {name: result["frameworks"] for name, result in seen.items()} == {name: [] for name in seen}
    # Each command ran its own code: the ones with what they need succeed, score and generate stop at the missing weights.
    assert {name: result["exit"] for name, result in seen.items()} == {
        "config": 0, "chunk": 0, "ingest": 0, "search": 0, "ask": 0, "status": 0, "repair": 0, "prompt": 0, "score": 1, "generate": 1}


def test_serve_is_what_loads_it():
    """The check above can fail: the server's modules do load the frameworks."""
    run = subprocess.run([sys.executable, "-c", "import sys, service.app, service.connections; "
                          "print(sorted({m.split('.')[0] for m in sys.modules} & {'litestar', 'uvicorn'}))"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert run.stdout.strip() == str(sorted(FRAMEWORKS)), run.stderr
