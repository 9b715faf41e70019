"""The page's client module (web/relay-client.js) under Node's own test runner: split chunks, error events,
refusals, resuming after a dropped connection. The cases are in tests/web/relay-client.test.mjs."""

import subprocess
from pathlib import Path

TESTS = Path(__file__).parent / "web" / "relay-client.test.mjs"


def test_the_client_module_passes_its_node_tests():
    done = subprocess.run(["node", "--test", str(TESTS)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout and "# pass 0" not in done.stdout


def test_the_vendored_libraries_are_the_pinned_releases_with_their_licenses():
    """`make vendor` copies them from node_modules (versions pinned in package.json); a hand edit shows here."""
    root, vendor = Path(__file__).parent.parent, Path(__file__).parent.parent / "web" / "vendor"
    highlight = "node_modules/@highlightjs/cdn-assets"
    copies = {"marked.esm.js": "node_modules/marked/lib/marked.esm.js",
              "purify.es.js": "node_modules/dompurify/dist/purify.es.mjs",
              "highlight.min.js": f"{highlight}/es/highlight.min.js",
              "highlight-light.css": f"{highlight}/styles/a11y-light.css",
              "highlight-dark.css": f"{highlight}/styles/a11y-dark.css",
              "marked.LICENSE": "node_modules/marked/LICENSE", "dompurify.LICENSE": "node_modules/dompurify/LICENSE",
              "highlight.LICENSE": f"{highlight}/LICENSE"}
    for vendored, original in copies.items():
        source = [line for line in (root / original).read_text().splitlines()
                  if not line.startswith("//# sourceMappingURL")]
        assert (vendor / vendored).read_text().splitlines() == source, f"{vendored}: run `make vendor`"
