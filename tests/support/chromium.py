"""Headless Chromium's flags, shared by the browser tests and docs/make_screenshot.py."""

#: Headless Chromium flags for tests and screenshots: no sandbox (root), and none of the
#: background connections a closed network refuses by the dozen at every start.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
