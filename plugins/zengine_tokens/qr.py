"""QR codes with segno: SVG and PNG for pages, text for a terminal."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import segno

# Medium error correction: a link of ~130 characters stays a small symbol that phones read
# from a screen at arm's length.
_ERROR = "m"


def _make(text: str) -> segno.QRCode:
    # Imported here: a server that never draws a QR code does not pay for segno (~3 MB).
    import segno

    return segno.make(text, error=_ERROR, micro=False)


def qr_svg(text: str) -> str:
    """A standalone SVG (no XML declaration, so it can be inlined in HTML)."""
    out = io.BytesIO()
    _make(text).save(out, kind="svg", scale=6, border=4, xmldecl=False, svgns=True,
                     title=None, desc=None)
    return out.getvalue().decode("utf-8")


def qr_png(text: str, scale: int = 8) -> bytes:
    out = io.BytesIO()
    _make(text).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def qr_text(text: str) -> str:
    """Half-block characters, dark modules on a light background, for a terminal."""
    out = io.StringIO()
    _make(text).terminal(out=out, compact=True, border=2)
    return out.getvalue()
