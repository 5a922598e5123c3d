"""Render a stressvae HTML report in headless Chromium and save a screenshot.

    python tools/screenshot_report.py stressvae-report/report.html report.png

Needs Debian's ``chromium`` package (``apt-get install chromium``). Checks
that the page rendered: the screenshot exists, has the expected size, and
is not blank (a share of non-white pixels, and the report's figures decoded:
many distinct colours). Exit code 0 on success, 1 with the reason otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("no Chromium found: install Debian's chromium (apt-get install chromium)")


def render(html: Path, png: Path, width: int, height: int) -> None:
    chrome = find_chromium()
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            chrome,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            html.resolve().as_uri(),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if res.returncode != 0 or not png.exists():
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise SystemExit(f"chromium failed (exit {res.returncode}): {' | '.join(tail)}")


def check(png: Path, width: int, height: int) -> str:
    import matplotlib.image as mpimg
    import numpy as np

    img = mpimg.imread(png)
    if img.shape[0] != height or img.shape[1] != width:
        raise SystemExit(f"screenshot is {img.shape[1]}x{img.shape[0]}, expected {width}x{height}")
    rgb = img[..., :3]
    ink = float(np.mean(rgb.min(axis=2) < 0.9))
    colours = len(np.unique((rgb[::4, ::4] * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    if ink < 0.02:
        raise SystemExit(f"the page looks blank ({ink:.1%} of pixels not white)")
    if colours < 200:
        raise SystemExit(f"the figures did not render ({colours} distinct colours)")
    return f"{png}: {width}x{height}, {ink:.1%} of pixels inked, {colours} colours"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("html", type=Path)
    p.add_argument("png", type=Path)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=7000, help="tall enough for the whole report")
    args = p.parse_args(argv)
    if not args.html.exists():
        raise SystemExit(f"no such report: {args.html}")
    render(args.html, args.png, args.width, args.height)
    print(check(args.png, args.width, args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
