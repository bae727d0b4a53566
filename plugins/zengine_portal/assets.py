"""The portal's static files: its stylesheet, the theme made from the branding settings, and
the operator's logo. All read once, when the app is built."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from zengine.errors import ConfigError
from zengine.settings import Settings
from zengine_portal.settings import PortalSettings

LOGO_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
              ".webp": "image/webp", ".svg": "image/svg+xml"}
MAX_LOGO_BYTES = 512 * 1024


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str


@dataclass(frozen=True)
class Assets:
    files: dict[str, Asset]

    @classmethod
    def load(cls, config: PortalSettings, settings: Settings) -> Assets:
        static = files("zengine_portal") / "static"
        css = "text/css; charset=utf-8"
        found = {"portal.css": Asset(static.joinpath("portal.css").read_bytes(), css),
                 "theme.css": Asset(theme_css(config).encode(), css)}
        if config.logo is not None:
            found["logo"] = _logo(settings.resolve_path(config.logo))
        return cls(found)

    def logo_url(self, base: str) -> str | None:
        return f"{base}/static/logo" if "logo" in self.files else None


def theme_css(config: PortalSettings) -> str:
    # Every value is a validated hex colour (PortalSettings), so it is written as it is.
    return (":root {\n"
            f"  --accent: {config.accent_color};\n"
            f"  --accent-text: {config.accent_text_color};\n"
            f"  --background: {config.background_color};\n"
            f"  --text: {config.text_color};\n"
            "}\n")


def _logo(path: Path) -> Asset:
    media_type = LOGO_TYPES.get(path.suffix.lower())
    where = "[plugins.portal] logo"
    if media_type is None:
        raise ConfigError(f"{where}: {path} is not a {', '.join(sorted(LOGO_TYPES))} file")
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None
    if len(body) > MAX_LOGO_BYTES:
        raise ConfigError(f"{where}: {path} is larger than {MAX_LOGO_BYTES // 1024} KiB")
    return Asset(body, media_type)
