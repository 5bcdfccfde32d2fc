"""Render report.html in headless Chromium (Debian's package) and save a screenshot.

    python bench/bench_report.py RUN_DIR [RUN_DIR ...] [--screenshot report.png] [--no-install]

Writes the report of the runs into a temporary folder, installs chromium with apt-get when it is
missing (needs root and network), takes a full-page screenshot with no network access from the page
(a self-contained report needs none), and prints the report's size and the render time. Look at the
screenshot before trusting the report.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from analysis.report import write_report

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,4000")


def browser() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--screenshot", type=Path, default=Path("report.png"))
    ap.add_argument("--no-install", action="store_true", help="fail instead of installing chromium")
    args = ap.parse_args()
    if browser() is None:
        if args.no_install:
            print("chromium not installed")
            return 1
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        html = write_report(args.runs, Path(tmp) / "report").with_suffix(".html")
        written = time.perf_counter() - start
        profile = Path(tmp) / "profile"
        profile.mkdir()
        shot = args.screenshot.resolve()
        start = time.perf_counter()
        done = subprocess.run([browser(), *FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                               html.as_uri()], capture_output=True, text=True, timeout=300)
        rendered = time.perf_counter() - start
        if done.returncode != 0 or not shot.is_file():
            print(f"chromium failed ({done.returncode}):\n{done.stderr[-2000:]}")
            return 1
        print(f"report.html: {html.stat().st_size / 1e6:.2f} MB, written in {written:.1f} s; "
              f"rendered by chromium in {rendered:.1f} s; screenshot {shot} ({shot.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
