"""The main user path in a real browser: `streamlit run app.py`, driven by Playwright in Chromium.

Upload a full-resolution X-ray on Diagnose and see the verdict, percentage and Grad-CAM; open
Evaluation and see the confusion matrix and ROC; check a site from a zip of unlabelled images; run a
tiny retraining to completion.
Screenshots go to $PNEUMO_SCREENSHOT_DIR (the README's come from here) or a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, SHIPPED_MODELS

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("PLAYWRIGHT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


REQUESTED: list[str] = []  # every URL the browser asked for, across this module's tests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Iterator[str]:
    """The app on the shipped model, with a private copy of the registry for the retraining run."""
    models = tmp_path_factory.mktemp("registry") / "models"
    shutil.copytree(SHIPPED_MODELS, models)
    port = free_port()
    env = {
        **os.environ,
        "PNEUMO_MODELS": str(models),
        "PNEUMO_DATA": str(data_root),
        "PNEUMO_RUNS": str(tmp_path_factory.mktemp("runs")),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("streamlit did not start within 90 s")
    yield url
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def browser_page(server: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launch = {"args": CHROMIUM_ARGS}
        if Path(CHROMIUM).exists():
            launch["executable_path"] = CHROMIUM
        browser = playwright.chromium.launch(**launch)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.on("request", lambda request: REQUESTED.append(request.url))
        yield page
        browser.close()


def snap(page, path: Path, height: int = 2400) -> None:
    """The whole page: Streamlit scrolls inside its own container, so a full-page screenshot of the
    usual window shows only the top. The window is made tall for the picture, then put back."""
    page.set_viewport_size({"width": 1400, "height": height})
    page.wait_for_timeout(1500)  # let the charts re-layout
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1400, "height": 1000})


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("PNEUMO_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_diagnose_upload_full_resolution(browser_page, server: str, full_size_image: Path, shots: Path) -> None:
    page = browser_page
    page.goto(f"{server}/diagnose")
    page.get_by_role("heading", name="Diagnose").wait_for()
    page.locator("input[type=file]").set_input_files(str(full_size_image))
    page.get_by_text("Probability of pneumonia").wait_for()
    body = page.locator("section.main, [data-testid=stMain]").first.inner_text()
    assert "NORMAL" in body or "PNEUMONIA" in body
    assert "%" in page.get_by_test_id("stMetricValue").first.inner_text()
    page.get_by_text("Grad-CAM: regions that drove the verdict").wait_for()
    assert page.locator("[data-testid=stImage] img").count() >= 2
    snap(page, shots / "diagnose.png", 1300)


def test_a_file_name_is_shown_as_written_never_as_markdown(browser_page, server: str, normal_image: Path) -> None:
    """A name carrying Markdown, a colour directive, LaTeX and an image link reads literally, in its
    heading and in the worklist: no fake green verdict, no image fetched from the name."""
    name = "<b>x</b> **md** spoof :green[NORMAL] $x$ ![i](http:127.0.0.1?md-img).jpeg"
    page = browser_page
    page.goto(f"{server}/diagnose")
    page.get_by_role("heading", name="Diagnose").wait_for()
    page.locator("input[type=file]").set_input_files(
        [
            {"name": name, "mimeType": "image/jpeg", "buffer": normal_image.read_bytes()},
            {"name": "plain.jpeg", "mimeType": "image/jpeg", "buffer": normal_image.read_bytes()},
        ]
    )
    page.get_by_text("Probability of pneumonia").first.wait_for()
    heading = page.locator("h3").filter(has_text="spoof").first
    heading.wait_for()
    assert heading.inner_text().startswith(name + ": ")
    assert heading.locator("img").count() == 0 and heading.locator("b").count() == 0
    assert heading.locator("span[style*=color]").count() <= 1  # only the real verdict is coloured
    worklist = page.locator("[data-testid=stTable]").first
    cell = worklist.locator("td").filter(has_text="spoof").first
    assert cell.inner_text().strip() == name
    assert worklist.locator("img, b, span[style*=color], .katex").count() == 0


def test_one_upload_limit_on_both_sides_of_the_edge(browser_page, server: str, tmp_path: Path) -> None:
    """50,000,000 bytes reach the core (and are read: these are damaged, not too large); one byte more is
    refused with the same limit, 50 MB, whichever side refuses it."""
    at_limit, over_limit = tmp_path / "at-limit.jpeg", tmp_path / "over-limit.jpeg"
    at_limit.write_bytes(b"\xff\xd8\xff" + b"\x00" * (50_000_000 - 3))
    over_limit.write_bytes(b"\xff\xd8\xff" + b"\x00" * (50_000_000 - 2))
    page = browser_page
    page.goto(f"{server}/diagnose")
    page.get_by_role("heading", name="Diagnose").wait_for()
    page.locator("input[type=file]").set_input_files([str(at_limit), str(over_limit)])
    page.get_by_text("The JPEG file is damaged or incomplete").wait_for()  # the core read all 50,000,000 bytes
    page.get_by_text("File must be 50.0MB or smaller.").wait_for()  # the browser refused one byte more
    body = page.locator("[data-testid=stMain]").first.inner_text()
    assert "over-limit.jpeg" not in body.split("File must be 50.0MB or smaller.", 1)[1]
    assert "Probability of pneumonia" not in body


def test_evaluation_dashboards(browser_page, server: str, shots: Path) -> None:
    page = browser_page
    page.goto(f"{server}/evaluation")
    page.get_by_role("heading", name="Evaluation").wait_for()
    page.locator(".js-plotly-plot").nth(1).wait_for()
    text = page.locator("[data-testid=stMain]").inner_text()
    svg_text = " ".join(page.locator(".js-plotly-plot .gtitle").all_text_contents())
    assert "Confusion matrix" in svg_text and "ROC curve" in svg_text, svg_text
    assert "Sensitivity" in text
    snap(page, shots / "evaluation.png", 2300)


def test_site_check_of_a_zip(browser_page, server: str, data_root: Path, shots: Path, tmp_path: Path) -> None:
    """A zip of a site's unlabelled images: the verdict line, the picture and the atypical gallery."""
    import zipfile

    archive = tmp_path / "site-b.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted((data_root / "train").rglob("*.jpeg")) + sorted((data_root / "test").rglob("*.jpeg")):
            handle.write(path, f"site-b/{path.name}")
    page = browser_page
    page.goto(f"{server}/site")
    page.get_by_role("heading", name="Site check").wait_for()
    page.locator("input[type=file]").set_input_files(str(archive))
    page.get_by_text("Site check (98 images):").wait_for(timeout=120_000)
    page.get_by_text("Most atypical images").wait_for()
    page.locator(".js-plotly-plot .gtitle").nth(1).wait_for()
    svg_text = " ".join(page.locator(".js-plotly-plot .gtitle").all_text_contents())
    assert "Site images against the reference" in svg_text and "Atypicality" in svg_text, svg_text
    assert page.locator("[data-testid=stImage] img").count() == 10
    snap(page, shots / "site.png", 1900)


def test_adapt_to_a_site_from_a_zip(browser_page, server: str, data_root: Path, tmp_path: Path) -> None:
    """The Retrain page's adapt mode: a zip of NORMAL/ and PNEUMONIA/, progress, the figures labelled
    site-adapted, out of fold, and "make default" held back until confirmed."""
    import zipfile

    archive = tmp_path / "site-b-labelled.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted((data_root / "test").rglob("*.jpeg")) + sorted((data_root / "train").rglob("*.jpeg"))[:40]:
            handle.write(path, f"site-b/{path.parent.name}/{path.name}")
    page = browser_page
    page.goto(f"{server}/retrain")
    page.get_by_role("heading", name="Retrain").wait_for()
    page.get_by_text("Adapt to a new site").click()
    page.locator("input[type=file]").set_input_files(str(archive))
    page.get_by_text("site-b-labelled.zip").wait_for()
    page.get_by_role("button", name="Adapt").click()
    page.get_by_text("is registered. Its figures are site-adapted, out of fold").wait_for(timeout=240_000)
    table = page.locator("[data-testid=stDataFrame]").first
    table.wait_for()
    assert page.get_by_role("button", name="Make ").is_disabled()
    from playwright.sync_api import expect

    page.get_by_text("I have compared the figures").click()
    expect(page.get_by_role("button", name="Make ")).to_be_enabled(timeout=30_000)


def test_retrain_tiny_run_to_completion(browser_page, server: str, shots: Path) -> None:
    from playwright.sync_api import expect

    page = browser_page
    page.goto(f"{server}/retrain")
    page.get_by_role("heading", name="Retrain").wait_for()
    page.get_by_label("Training images (subset)").fill("100")
    page.get_by_label("Epochs").fill("2")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("epoch", exact=False).first.wait_for(timeout=120_000)
    page.get_by_text("Finished.").wait_for(timeout=300_000)
    promote = page.get_by_role("button", name="Make run-")
    promote.wait_for(timeout=60_000)
    page.get_by_text("Validation: each model was scored on its own validation split").wait_for()
    expect(promote).to_be_disabled()  # one click is not enough to change every user's model
    snap(page, shots / "retrain.png", 1700)
    page.get_by_text("I have compared the figures").click()
    expect(promote).to_be_enabled(timeout=30_000)


def test_nothing_the_app_shows_needs_the_internet(browser_page, server: str) -> None:
    """Every request of every page visited above (icons, fonts and favicon included) went to the app."""
    browser_page.goto(f"{server}/")
    browser_page.get_by_role("heading").first.wait_for()
    browser_page.wait_for_timeout(2000)
    outside = sorted({url for url in REQUESTED if not url.startswith((server, "data:", "blob:"))})
    assert REQUESTED and outside == []
