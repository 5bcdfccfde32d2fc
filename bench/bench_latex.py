"""Compile families.tex with pdflatex, installing a LaTeX engine from Debian's packages if needed.

    python bench/bench_latex.py RUN_DIR_OR_RULES_FILE [--no-install]

Writes the family files of the run (or rules file) into a temporary folder, installs
texlive-latex-base and texlive-latex-recommended with apt-get when pdflatex is missing (needs root and
network; takes minutes), compiles twice (longtable settles its column widths on the second pass) and
prints whether it compiled, the PDF's size and pages, and the compile time.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from analysis.report import run_families

PACKAGES = ("texlive-latex-base", "texlive-latex-recommended")


def install() -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="a run directory or a rules file")
    ap.add_argument("--no-install", action="store_true", help="fail instead of installing pdflatex")
    args = ap.parse_args()
    if shutil.which("pdflatex") is None:
        if args.no_install:
            print("pdflatex not installed")
            return 1
        start = time.perf_counter()
        install()
        print(f"installed {' '.join(PACKAGES)} in {time.perf_counter() - start:.0f} s")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        is_run = args.source.is_dir()
        report = run_families(args.source if is_run else None, None if is_run else args.source, out)
        tex = report.paths["latex"]
        start = time.perf_counter()
        for _ in range(2):
            done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", tex.name], cwd=out,
                                  capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                print("families.tex did NOT compile:")
                print("\n".join(line for line in done.stdout.splitlines() if line.startswith("!") or "error" in line.lower()))
                return 1
        seconds = time.perf_counter() - start
        pdf = tex.with_suffix(".pdf")
        pages = re.search(r"Output written on .*\((\d+) pages?", done.stdout)
        print(f"families.tex compiled with pdflatex: {pdf.stat().st_size} bytes, "
              f"{pages.group(1) if pages else '?'} pages, {seconds:.1f} s for two passes "
              f"({len(report.families.families)} families, {len(report.families.members)} rules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
