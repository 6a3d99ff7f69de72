"""The web page's weight and time to interactive in headless Chromium, against a
real server on 127.0.0.1 holding the sample notes.

Page weight: bytes transferred on a first (cold cache) load of /app/, headers
included, from the browser's resource timing. Time to interactive: from the
start of navigation until the page's first API answer is shown and its handlers
are attached (the page sets the ``noteloom-ready`` performance mark then).
Each of ``--loads`` cold loads runs in a fresh browser context; medians reported.

    .venv/bin/python bench/web_bench.py [--loads 7]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile

import benchlib
from benchlib import NOTES, PYTHON, ROOT, log, median, table

API_KEY = "bench-key"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run"]
MEASURE = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const resources = performance.getEntriesByType('resource');
  const files = [nav, ...resources.filter(r => r.name.includes('/app/'))];
  return {
    transferred: files.reduce((n, r) => n + r.transferSize, 0),
    body: files.reduce((n, r) => n + r.decodedBodySize, 0),
    api: resources.filter(r => !r.name.includes('/app/')).reduce((n, r) => n + r.transferSize, 0),
    files: files.length,
    dom_ready: nav.domContentLoadedEventEnd,
    interactive: performance.getEntriesByName('noteloom-ready')[0].startTime,
  };
}"""


def serve(data: str) -> tuple[subprocess.Popen, str]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "NOTELOOM_API_KEY": API_KEY}
    proc = subprocess.Popen([PYTHON, "-m", "service.cli", "--data", data, "serve", "--port", str(port)], env=env,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, headers={"X-API-Key": API_KEY}, timeout=120) as client:
        benchlib.wait_healthy(client, proc, 180)
        for path in sorted(NOTES.glob("*")):
            client.post("/documents", files={"file": (path.name, path.read_bytes())}).raise_for_status()
    return proc, base


def measure(base: str, loads: int) -> list[dict]:
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=FLAGS)
        for _ in range(loads):
            context = browser.new_context(viewport={"width": 1280, "height": 860})
            context.add_init_script(f"localStorage.setItem('noteloom-key', {API_KEY!r})")
            page = context.new_page()
            page.goto(base + "/app/")
            page.wait_for_function("performance.getEntriesByName('noteloom-ready').length > 0", timeout=60_000)
            rows.append(page.evaluate(MEASURE))
            context.close()
        browser.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=7)
    args = parser.parse_args()
    lines = benchlib.header("Web page: weight and time to interactive", benchlib.loadavg())
    data = tempfile.mkdtemp(prefix="noteloom-web-bench-")
    proc, base = serve(data)
    try:
        rows = measure(base, args.loads)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)
    first = rows[0]
    lines += [f"{args.loads} cold loads of /app/ (fresh browser context each), medians; {first['files']} files.", "",
              table(["measure", "value"], [
                  ["page weight, transferred (headers included)", f"{median([r['transferred'] for r in rows]) / 1024:.1f} KiB"],
                  ["page files, uncompressed bodies", f"{median([r['body'] for r in rows]) / 1024:.1f} KiB"],
                  ["first API answer (/status), transferred", f"{median([r['api'] for r in rows]) / 1024:.1f} KiB"],
                  ["DOMContentLoaded", f"{median([r['dom_ready'] for r in rows]):.0f} ms"],
                  ["time to interactive (first API answer shown)", f"{median([r['interactive'] for r in rows]):.0f} ms"],
              ])]
    text = "\n".join(lines)
    print(text)
    log(f"wrote {benchlib.write_results('web', text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
