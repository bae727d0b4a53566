"""The URLs a token travels in: Zoiper's ``token_url`` and the OEM QR-howto link."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from zengine.settings import Settings
from zengine_tokens.settings import TokensSettings


def token_url(config: TokensSettings, settings: Settings) -> str | None:
    """What Zoiper appends the token to: the configured ``token_url``, else ``[server]
    public_url`` + the token path + ``?<param>=``; ``None`` when neither is set."""
    if config.token_url is not None:
        return config.token_url
    public = settings.server.public_url
    if public is None:
        return None
    return f"{public.rstrip('/')}{config.path}?{config.param}="


def qr_howto_link(config: TokensSettings, token: str) -> str | None:
    """``https://oem.zoiper.com/qr-howto.php?provider_id=…&t=TOKEN``: ``t=`` only, never the
    ``u``, ``p`` or ``a`` parameters, so no SIP credential passes through Zoiper's service.
    Every value is percent-encoded."""
    if config.provider_id is None:
        return None
    query = urlencode({"provider_id": config.provider_id, "t": token}, quote_via=quote,
                      safe="")
    separator = "&" if "?" in config.qr_howto_url else "?"
    return f"{config.qr_howto_url}{separator}{query}"


def link_for(config: TokensSettings, settings: Settings, token: str) -> str:
    """The link a user gets: the QR-howto link when a provider id is configured, else the
    token URL itself (what Zoiper would fetch), else ``""``."""
    howto = qr_howto_link(config, token)
    if howto is not None:
        return howto
    base = token_url(config, settings)
    return base + token if base is not None else ""
