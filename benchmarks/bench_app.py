"""App benchmark in a real browser: prints figures, asserts nothing.

    python benchmarks/bench_app.py [--data DIR] [--uploads N]

- first page rendered: seconds from launching `streamlit run app.py` until the home page's title
  and model card are visible in Chromium (the model loads on that first page);
- verdict on screen: seconds from handing a full-resolution X-ray to the Diagnose page's file
  input until the verdict's probability is visible (includes the browser's upload);
- a batch: seconds from handing ``--batch`` test-set images at once to a fresh Diagnose page until
  the site check's line (shown from 50 images) and the worklist are on screen.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import CHROMIUM_ARGS, ROOT, add_data_argument, free_port
from pneumo_core.site import CHECK_WITH_DIAGNOSE_FROM


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--batch", type=int, default=60, help="images uploaded at once (0: skip)")
    args = parser.parse_args()
    images = sorted((args.data / "val").rglob("*.jpeg"))[: args.uploads]
    port = free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
    ]
    url = f"http://127.0.0.1:{port}"
    with sync_playwright() as playwright:
        launch = {"args": CHROMIUM_ARGS}
        if Path("/usr/bin/chromium").exists():
            launch["executable_path"] = "/usr/bin/chromium"
        browser = playwright.chromium.launch(**launch)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        started = time.perf_counter()
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    page.goto(url, timeout=2_000)
                    break
                except Exception:
                    time.sleep(0.2)
            page.get_by_text("Model card:").first.wait_for()
            print(
                f"first page rendered (home with model card) after `streamlit run`: {time.perf_counter() - started:.1f} s"
            )
            times = []
            for image in images:
                page.goto(f"{url}/diagnose")  # a fresh session each time: nothing cached
                page.get_by_role("heading", name="Diagnose").wait_for()
                start = time.perf_counter()
                page.locator("input[type=file]").set_input_files(str(image))
                page.get_by_text("Probability of pneumonia").wait_for()
                times.append(time.perf_counter() - start)
            sizes = [p.stat().st_size // 1024 for p in images]
            print(
                f"verdict on screen after upload ({len(times)} full-resolution JPEGs, {min(sizes)}-{max(sizes)} KB): "
                f"median {statistics.median(times):.2f} s, max {max(times):.2f} s"
            )
            if args.batch:
                batch = sorted((args.data / "test").rglob("*.jpeg"))[: args.batch]
                page.goto(f"{url}/diagnose")
                page.get_by_role("heading", name="Diagnose").wait_for()
                start = time.perf_counter()
                page.locator("input[type=file]").set_input_files([str(p) for p in batch])
                checked = len(batch) >= CHECK_WITH_DIAGNOSE_FROM
                if checked:
                    page.get_by_text("Site check (").first.wait_for()
                page.get_by_text("Worklist (highest probability first)").wait_for()
                print(f"{len(batch)} test-set images at once: {'site check and ' if checked else ''}worklist on "
                      f"screen after {time.perf_counter() - start:.1f} s")  # fmt: skip
        finally:
            browser.close()
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    main()
