"""Shared fixtures for the adapter conformance tests."""

from __future__ import annotations

import pytest

# Messages every adapter must carry byte-exactly: Unicode in several scripts,
# emoji (astral code points, ZWJ sequences, skin tones), long bodies, and
# characters that need escaping in URLs, forms and JSON.
BODIES = [
    "Your code is 123456",
    "Grüße aus Köln — ça va? Привет, мир! 你好\uff0c世界 مرحبا",
    "Emoji 😀👍🏽 \U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f1ea\U0001f1ea",
    "a+b=c & d%20e ~tilde~ 'quotes' \"double\" <tag> \\back\\slash /path?q=1#frag",
    "line one\nline two\r\n\ttabbed \u0007bell \u007fdel",
    "Ünïcödé " * 100 + "end",
    "x" * 1600,
    " leading and trailing spaces ",
]


@pytest.fixture(params=range(len(BODIES)), ids=[f"body{i}" for i in range(len(BODIES))])
def body(request: pytest.FixtureRequest) -> str:
    return BODIES[request.param]
