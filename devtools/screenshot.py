"""The README's picture of the chat page: ``make screenshot`` writes ``web/screenshot.png``.

It starts the local stack on free ports (as the tests do), opens the page in Chromium (Debian's, driven by
Playwright) at a desktop's size in the light scheme, clicks the first screen's "Markdown, echoed back" example and
photographs the answer once it is complete. Run it again after a change to the page's look, and commit the PNG.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devtools.local_run import WEB_DIRECTORY, LocalRun

if TYPE_CHECKING:  # playwright itself is imported only when a picture is taken
    from playwright.sync_api import ViewportSize

__all__ = ["VIEWPORT", "photograph"]

DEFAULT_PATH = WEB_DIRECTORY / "screenshot.png"
VIEWPORT: ViewportSize = {"width": 1200, "height": 760}
EXAMPLE = "#example-list button >> text=sim:echo=1"
# Keys that would make a provider real: the picture shows the simulated provider, which needs none.
PROVIDER_KEYS = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "AZURE_OPENAI_API_KEY",
                 "BEDROCK_MODELS", "PROVIDER_KEYS_SECRET_ARN"]


def photograph(page: Any, url: str, path: Path) -> None:
    """The page at ``url`` (a Playwright page of VIEWPORT's size), once its echoed markdown example has been
    answered, into the PNG at ``path``."""
    page.goto(f"{url}/")
    page.click(EXAMPLE)
    page.wait_for_selector(".message.ai[data-status=complete]", timeout=30_000)
    page.mouse.move(0, 0)  # no hover state in the picture
    page.screenshot(path=str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    for key in PROVIDER_KEYS:
        os.environ.pop(key, None)
    # The stack's logs and metrics go to stdout: kept out of the terminal, which gets one line about the picture.
    with contextlib.redirect_stdout(io.StringIO()):
        run = LocalRun(port=0).start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                                     args=["--no-sandbox", "--disable-gpu"])
                photograph(browser.new_page(viewport=VIEWPORT, color_scheme="light"), run.url, args.path)
                browser.close()
        finally:
            run.stop()
    print(f"wrote {args.path} ({args.path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
