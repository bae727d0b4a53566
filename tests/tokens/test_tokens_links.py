"""The OEM QR-howto link and the QR codes: t= only, percent-encoded, and codes that decode."""

from __future__ import annotations

import io
from urllib.parse import parse_qsl, urlsplit

import zxingcpp
from lxml import etree
from PIL import Image

from zengine.settings import settings_from_mapping
from zengine_tokens import links
from zengine_tokens.api import qr_png, qr_svg, qr_text
from zengine_tokens.settings import TokensSettings

LINK = "https://oem.zoiper.com/qr-howto.php?provider_id=abc&t=" + "Zz9-_" * 8


def test_link_carries_provider_id_and_t_only_percent_encoded() -> None:
    config = TokensSettings(provider_id="0123456789abcdef0123456789abcdef")
    link = links.qr_howto_link(config, "Abc-_9")
    assert link == ("https://oem.zoiper.com/qr-howto.php?"
                    "provider_id=0123456789abcdef0123456789abcdef&t=Abc-_9")
    # Values are percent-encoded whatever they hold (a configured page with its own query).
    odd = TokensSettings.model_construct(provider_id="a b&c", qr_howto_url="https://x.test/q?l=en")
    link = links.qr_howto_link(odd, "t/k+n=?&u=me")
    assert link == "https://x.test/q?l=en&provider_id=a%20b%26c&t=t%2Fk%2Bn%3D%3F%26u%3Dme"
    assert dict(parse_qsl(urlsplit(link).query)) == {"l": "en", "provider_id": "a b&c",
                                                     "t": "t/k+n=?&u=me"}
    assert links.qr_howto_link(TokensSettings(), "x") is None


def test_token_url_default_and_fallback_link() -> None:
    settings = settings_from_mapping({"server": {"public_url": "https://p.test/zen/"}},
                                     environ={})
    config = TokensSettings()
    assert links.token_url(config, settings) == "https://p.test/zen/token?id="
    assert links.link_for(config, settings, "TOK") == "https://p.test/zen/token?id=TOK"
    explicit = TokensSettings(token_url="https://t.test/fetch?k=")
    assert links.token_url(explicit, settings) == "https://t.test/fetch?k="
    assert links.link_for(config, settings_from_mapping({}, environ={}), "TOK") == ""


def test_png_and_terminal_codes_decode_to_the_link() -> None:
    [png] = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr_png(LINK))))
    assert png.text == LINK
    # The terminal code drawn back into pixels: each character is two modules stacked.
    rows = qr_text(LINK).splitlines()
    top = {"█": 255, "▀": 255, "▄": 0, " ": 0}
    bottom = {"█": 255, "▄": 255, "▀": 0, " ": 0}
    width, scale = max(len(r) for r in rows), 6
    image = Image.new("L", (width * scale, len(rows) * 2 * scale), 255)
    for y, row in enumerate(rows):
        for x, char in enumerate(row):
            for half, shade in ((0, top[char]), (1, bottom[char])):
                if shade == 0:
                    image.paste(0, (x * scale, (2 * y + half) * scale,
                                    (x + 1) * scale, (2 * y + half + 1) * scale))
    [text] = zxingcpp.read_barcodes(image)
    assert text.text == LINK


def test_svg_is_a_standalone_svg_element() -> None:
    svg = qr_svg(LINK)
    assert svg.startswith("<svg") and "<?xml" not in svg
    root = etree.fromstring(svg.encode())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert LINK not in svg  # the link is only in the drawn modules
