"""Load benchmark in real browsers: server CPU per upload, many users at once, memory over a soak.

    python benchmarks/bench_load.py [--data DIR] [--sessions 10] [--uploads 5] [--soak 300] [--settle 180] [--app app.py]

Starts `streamlit run app.py` on the default model, with ``MALLOC_ARENA_MAX=2`` as scripts/app.sh
does (unless the environment sets it), and drives headless Chromium (one browser per simulated user,
each in its own thread) with the dataset's original-resolution val/ JPEGs, enlarged to ``--side`` px.
Prints figures, asserts nothing. Linux only (server CPU and memory come from /proc). ``--app
benchmarks/bare_page.py`` serves a bare page instead: what the browsers and this script alone cost
on the machine, the floor under any page's figures.

1. One session: ``--uploads`` images, one after another, in one page. Server CPU seconds per upload
   (user + system time of the server process), and seconds from handing the file to the page until
   the verdict, and until the heatmap image, are on screen.
2. ``--sessions`` users at once, each uploading ``--uploads`` images one after another: verdict and
   heatmap times (p50, p95) and errors (timeouts, or an error or traceback on the page). Run twice:
   each user starting as soon as their page has loaded (the first uploads meet the other browsers'
   page loads), then all starting together once every page has loaded. With each, the machine's CPU
   seconds: the server's, everything else's (the browsers, their drivers, this script) and idle.
3. Soak: ``--soak`` uploads, by sessions of ``--uploads`` (two at a time); the server's resident
   memory before, at its peak, at the end, and ``--settle`` seconds after the last session closed.
   Memory before the soak is read ``--settle`` seconds after the earlier phases' sessions closed and
   one more user came and went, and so is the last figure after it: Streamlit keeps a closed tab's
   session for two minutes, and drops the expired ones only when a session connects or leaves, so
   memory read at any moment depends on how many are still kept.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import CHROMIUM_ARGS, ROOT, add_data_argument, free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def large_copies(originals: list[Path], side: int, folder: Path) -> list[Path]:
    """The dataset's original-resolution val images, enlarged to ``side`` px on the long side and saved
    as JPEG (quality 90): the size of a modern digital radiograph (the issue measured 1731 x 2414)."""
    import cv2

    copies = []
    for path in originals:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        scale = side / max(image.shape)
        large = cv2.resize(
            image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_CUBIC
        )
        copy = folder / path.name
        cv2.imwrite(str(copy), large, [cv2.IMWRITE_JPEG_QUALITY, 90])
        copies.append(copy)
    return copies


def settled_mb(url: str, pid: int, settle: float) -> float:
    """The server's memory ``settle`` seconds after the last sessions closed, then once one more user
    has opened and closed the page. Streamlit keeps a closed tab's session for two minutes in case it
    reconnects, and lets go of the expired ones only when a session connects or leaves."""
    time.sleep(settle)
    run_sessions(url, [[]])
    time.sleep(15)  # the app's own store drops a closed tab's analyses within 10 s
    return rss_mb(pid)


def percent_change(value: float, start: float) -> str:
    return f"{100 * (value / start - 1):+.1f}%"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def session(
    url: str,
    images: list[Path],
    timings: list[tuple[float, float]],
    errors: list[str],
    ready: threading.Barrier | None = None,
) -> None:
    """One user: a browser, one page, the images uploaded one after another (after every user's page
    has loaded, with ``ready``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launch = {"args": CHROMIUM_ARGS}
        if Path("/usr/bin/chromium").exists():
            launch["executable_path"] = "/usr/bin/chromium"
        browser = playwright.chromium.launch(**launch)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            try:
                page.goto(f"{url}/diagnose")
                page.get_by_role("heading", name="Diagnose").wait_for()
                if ready is not None:
                    ready.wait(timeout=300)
            except Exception as error:  # a page that never loads fails this user, and releases the others
                if ready is not None:
                    ready.abort()
                errors.append(f"page load: {type(error).__name__}")
                return
            for count, image in enumerate(images, start=1):
                start = time.perf_counter()
                try:
                    page.locator("input[type=file]").set_input_files(str(image))
                    page.locator("h3").filter(has_text=f"{image.name}: ").first.wait_for()
                    verdict = time.perf_counter() - start
                    page.get_by_text("Grad-CAM: regions that drove the verdict").nth(count - 1).wait_for()
                    page.locator("[data-testid=stImage] img").nth(2 * count - 1).wait_for()
                    timings.append((verdict, time.perf_counter() - start))
                except Exception as error:  # a timeout is a failed upload, not the end of the benchmark
                    errors.append(f"{image.name}: {type(error).__name__}")
                    return
                text = page.locator("[data-testid=stMain]").first.inner_text()
                if "Traceback" in text or "Error" in text:
                    errors.append(f"{image.name}: an error on the page")
        finally:
            browser.close()


def machine_cpu_seconds() -> tuple[float, float]:
    """The whole machine's busy and idle CPU seconds since boot, all cores together (from /proc/stat)."""
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS, (idle + iowait) / CLOCK_TICKS


def run_sessions(
    url: str, batches: list[list[Path]], together: bool = False
) -> tuple[list[tuple[float, float]], list[str]]:
    """One browser per batch, all at once; with ``together``, the uploads start once every page has loaded."""
    timings: list[tuple[float, float]] = []
    errors: list[str] = []
    ready = threading.Barrier(len(batches)) if together else None
    threads = [threading.Thread(target=session, args=(url, batch, timings, errors, ready)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return timings, errors


def summary(timings: list[tuple[float, float]]) -> str:
    verdicts, heatmaps = [t[0] for t in timings], [t[1] for t in timings]
    return (
        f"verdict p50 {statistics.median(verdicts):.2f} s, p95 {percentile(verdicts, 0.95):.2f} s; "
        f"heatmap shown p50 {statistics.median(heatmaps):.2f} s, p95 {percentile(heatmaps, 0.95):.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--uploads", type=int, default=5)
    parser.add_argument("--soak", type=int, default=300, help="uploads in the soak (0: skip it)")
    parser.add_argument(
        "--settle", type=int, default=180, help="seconds to wait after sessions close, before and after the soak"
    )
    parser.add_argument("--side", type=int, default=2400, help="long side of the uploaded JPEGs, in pixels")
    parser.add_argument(
        "--app", default="app.py", help="the Streamlit script to serve, from the project root (default: app.py)"
    )
    args = parser.parse_args()
    if min(args.sessions, args.uploads) < 1 or min(args.soak, args.settle) < 0 or args.side < 64:
        parser.error("--sessions and --uploads must be >= 1, --soak and --settle >= 0, --side >= 64")
    with tempfile.TemporaryDirectory() as folder:  # the enlarged copies go when the benchmark ends
        run(args, large_copies(sorted((args.data / "val").rglob("*.jpeg")), args.side, Path(folder)), parser)


def run(args: argparse.Namespace, pool: list[Path], parser: argparse.ArgumentParser) -> None:
    if len(pool) < args.uploads:
        parser.error(f"too few JPEGs under {args.data / 'val'}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "streamlit", "run", args.app, "--server.port", str(port)]
    server = subprocess.Popen(
        [*command, "--server.headless", "true"],
        cwd=ROOT,
        env={"MALLOC_ARENA_MAX": "2", **os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},  # as scripts/app.sh starts it
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        run_sessions(url, [pool[:1]])  # warm-up: the model loads in the first session
        print(f"uploads: {len(pool)} JPEGs, {args.side} px on the long side, {min(p.stat().st_size for p in pool) // 1024}-"
              f"{max(p.stat().st_size for p in pool) // 1024} KB")  # fmt: skip

        before = cpu_seconds(server.pid)
        timings, errors = run_sessions(url, [pool[1 : 1 + args.uploads]])
        used = cpu_seconds(server.pid) - before
        print(f"1 session, {len(timings)} uploads: server CPU {used / max(1, len(timings)):.2f} s per upload; "
              f"{summary(timings)}; errors {len(errors)}")  # fmt: skip

        batches = [
            [pool[(s * args.uploads + i) % len(pool)] for i in range(args.uploads)] for s in range(args.sessions)
        ]
        for together in (False, True):
            before, (busy, idle), start = cpu_seconds(server.pid), machine_cpu_seconds(), time.perf_counter()
            timings, errors = run_sessions(url, batches, together)
            (busy_after, idle_after), server_cpu = machine_cpu_seconds(), cpu_seconds(server.pid) - before
            print(f"{args.sessions} sessions at once, {args.uploads} uploads each"
                  f"{', once every page has loaded' if together else ''}: {summary(timings)}; errors {len(errors)} "
                  f"{errors[:3]}; {time.perf_counter() - start:.1f} s in all; CPU seconds: server {server_cpu:.1f}, "
                  f"everything else {busy_after - busy - server_cpu:.1f}, idle {idle_after - idle:.1f}")  # fmt: skip

        if args.soak:
            start_mb = settled_mb(url, server.pid, args.settle)
            peak, done = 0.0, 0
            while done < args.soak:
                batches = [
                    [pool[(done + k * args.uploads + i) % len(pool)] for i in range(args.uploads)] for k in range(2)
                ]
                run_sessions(url, batches)
                done += 2 * args.uploads
                peak = max(peak, rss_mb(server.pid))
            end_mb = rss_mb(server.pid)
            time.sleep(args.settle)
            unvisited_mb = rss_mb(server.pid)
            print(f"soak, {done} uploads in sessions of {args.uploads}: server memory {start_mb:.0f} MB before, "
                  f"peak {peak:.0f} MB ({percent_change(peak, start_mb)}), {end_mb:.0f} MB at the end; "
                  f"{args.settle} s after the sessions closed {unvisited_mb:.0f} MB "
                  f"({percent_change(unvisited_mb, start_mb)}), and once a new user has come "
                  f"{(after := settled_mb(url, server.pid, 0)):.0f} MB ({percent_change(after, start_mb)})")  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
