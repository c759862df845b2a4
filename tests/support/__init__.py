"""What the test suite shares and a library user never needs.

``stack``: the whole daemon in-process on its embedded simulator, driven over real HTTP;
``streams``: SSE/WebSocket clients that record what a browser would receive;
``chromium``: headless Chromium's flags for this machine; ``shared``: where the
project's ``../shared`` reference (real Asterisk captures) lives.

The suite imports these as ``tests.support.<module>`` (``pythonpath = ["."]`` in
pyproject.toml puts the checkout on ``sys.path``), so helper modules need no unique
name prefixes.
"""
