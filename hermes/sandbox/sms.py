"""SMS segment counting (GSM 03.38 vs UCS-2), for the `num_segments` a provider reports."""

from __future__ import annotations

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def segments(text: str) -> int:
    """How many SMS parts `text` takes (single: 160 GSM-7 / 70 UCS-2 units)."""
    if not text:
        return 1
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        units = len(text) + sum(1 for c in text if c in _GSM_EXTENDED)
        single, multi = 160, 153
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return 1 if units <= single else -(-units // multi)
