"""Headless Chromium for looking at the notice as a person would: DOM, console, PNG and PDF.

Used by tests/test_notice.py and by `make notice-screenshot`:

    python tests/chromium.py OUTDIR

writes OUTDIR/<case>.html, .png (first screen), -full.png (the whole notice) and .pdf (printed)
for the founding case and for a pended case. Debian's `chromium` is installed with apt-get when
missing and this process may do so; otherwise `ensure` says why it cannot.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Flags that work in a container without a display, a sandbox or network.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
CASES = {
    "founding": ROOT / "examples" / "cases" / "t12-s2-fusion.json",
    "pended": ROOT / "examples" / "cases" / "conflicting-nicotine.json",
}
# Chromium logs every console message (any level) as `...:CONSOLE...] "text", source: ...`.
_CONSOLE = re.compile(r":CONSOLE[^\]]*\] (.*)")
TIMEOUT = 120


def find() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def ensure() -> tuple[str | None, str]:
    """Return (path to chromium, "") or (None, why it is not available)."""
    found = find()
    if found:
        return found, ""
    if shutil.which("apt-get") is None:
        return None, "chromium is not installed and apt-get is not available to install it"
    if os.geteuid() != 0:
        return None, "chromium is not installed and installing it with apt-get needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=900,
    )
    found = find()
    if found:
        return found, ""
    tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
    return None, f"chromium could not be installed with apt-get: {tail[0]}"


def run(chromium: str, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Chromium once on a local file, with a new empty profile."""
    with tempfile.TemporaryDirectory(prefix="necessity-chromium-") as profile:
        return subprocess.run(
            [
                chromium,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                *args,
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=TIMEOUT,
        )


def load(chromium: str, page: Path) -> tuple[str, list[str]]:
    """Return the DOM Chromium built from the page and every console message it logged."""
    result = run(chromium, page, "--dump-dom")
    if result.returncode != 0:
        raise RuntimeError(f"chromium failed ({result.returncode}): {result.stderr[-500:]}")
    return result.stdout, [m.group(1) for m in _CONSOLE.finditer(result.stderr)]


def screenshot(chromium: str, page: Path, png: Path, width: int = 1000, height: int = 1400) -> None:
    result = run(chromium, page, f"--screenshot={png.resolve()}", f"--window-size={width},{height}")
    if result.returncode != 0 or not png.exists():
        raise RuntimeError(f"no screenshot ({result.returncode}): {result.stderr[-500:]}")


def pdf(chromium: str, page: Path, out: Path) -> None:
    result = run(chromium, page, f"--print-to-pdf={out.resolve()}", "--no-pdf-header-footer")
    if result.returncode != 0 or not out.exists():
        raise RuntimeError(f"no PDF ({result.returncode}): {result.stderr[-500:]}")


def notice_html(case: Path) -> str:
    from click.testing import CliRunner  # noqa: PLC0415 - only the script needs the CLI

    from evaluator.cli.main import main  # noqa: PLC0415

    result = CliRunner().invoke(main, ["evaluate", str(case), "--format", "html"])
    if result.exit_code not in (0, 1, 3):
        raise RuntimeError(f"evaluate failed ({result.exit_code}): {result.output}")
    return result.output


def _pages(pdf_file: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf_file.read_bytes()))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/chromium.py OUTDIR", file=sys.stderr)
        return 2
    chromium, why = ensure()
    if chromium is None:
        print(f"error: {why}", file=sys.stderr)
        return 1
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, case in CASES.items():
        page = out / f"{name}.html"
        page.write_text(notice_html(case), encoding="utf-8")
        _, console = load(chromium, page)
        if console:
            print(f"error: {page}: console messages: {console}", file=sys.stderr)
            return 1
        screenshot(chromium, page, out / f"{name}.png")
        pages = 0
        for paper in ("a4", "letter"):
            # The notice's @page leaves the size to the printer; pin it to check both papers.
            sized = out / f"{name}-{paper}.html"
            sized.write_text(
                page.read_text(encoding="utf-8").replace(
                    "</style>", f"@page {{ size: {paper}; }}</style>", 1
                ),
                encoding="utf-8",
            )
            printed = out / f"{name}-{paper}.pdf"
            pdf(chromium, sized, printed)
            sized.unlink()
            pages = max(pages, _pages(printed))
            print(f"{printed} ({_pages(printed)} pages)")
        # Headless Chromium shoots the window only: make it about as tall as the printed copy
        # (a page of print is about 1,000 pixels here), within its 16,384-pixel limit.
        height = min(1000 * pages + 1000, 16000)
        screenshot(chromium, page, out / f"{name}-full.png", height=height)
        print(f"{out / name}.png, {out / name}-full.png")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main(sys.argv[1:]))
