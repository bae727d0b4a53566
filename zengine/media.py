"""Codecs and ZRTP algorithms: Zoiper's ids, the names operators write, and validation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from zengine.errors import ConfigError
from zengine.models import Version
from zengine.values import as_bool as _as_bool
from zengine.values import as_uint as _as_uint
from zengine.values import invalid as _err

_V14 = Version(1, 14)


# --- codecs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    id: int
    name: str
    aliases: tuple[str, ...] = ()
    video: bool = False
    #: The name Zoiper's example server writes in the legacy 1.0 format (its ``$codec_ids``
    #: keys and the seed's codec comment); ``None`` where neither names the codec.
    legacy_name: str | None = None


#: Zoiper codec ids (public-docs and the example server's config.php).
CODECS: tuple[Codec, ...] = (
    Codec(0, "ulaw", ("pcmu", "g711u", "g711ulaw"), legacy_name="uLaw"),
    Codec(1, "gsm", legacy_name="GSM"),
    Codec(6, "alaw", ("pcma", "g711a", "g711alaw"), legacy_name="aLaw"),
    Codec(7, "g722", legacy_name="g722"),
    Codec(16, "g729", legacy_name="g729"),
    Codec(18, "mjpeg", video=True),
    Codec(24, "speex_narrow", ("speex", "speex8k"), legacy_name="Speex narrow"),
    Codec(25, "speex_wide", ("speex16k",), legacy_name="Speex wide"),
    Codec(26, "speex_ultra", ("speex32k",), legacy_name="Speex ultra"),
    Codec(27, "ilbc30", legacy_name="iLBC30"),
    Codec(28, "ilbc20", legacy_name="iLBC20"),
    Codec(29, "g726", ("g72632",), legacy_name="g726"),
    Codec(30, "h263_plus", ("h263p", "h2631998"), video=True, legacy_name="H263 Plus"),
    Codec(31, "vp8", video=True, legacy_name="VP8"),
    Codec(32, "h264", video=True, legacy_name="H.264"),
    Codec(33, "telephone_event", ("rfc2833",)),
    Codec(34, "opus_narrow", ("opus8k",), legacy_name="Opus narrow"),
    Codec(35, "opus_wide", ("opus16k",), legacy_name="Opus wide"),
    Codec(36, "opus_super", ("opus24k",), legacy_name="Opus super"),
    Codec(37, "opus_full", ("opus48k",), legacy_name="Opus full"),
    Codec(38, "amr"),
    Codec(39, "amr_wb"),
    Codec(40, "h264_hw", video=True),
)


def _norm(name: str) -> str:
    return re.sub(r"[\s_.\-]", "", name).lower()


@cache
def _codec_index() -> dict[str, Codec]:
    index: dict[str, Codec] = {}
    for codec in CODECS:
        index[str(codec.id)] = codec
        for name in (codec.name, *codec.aliases):
            index[_norm(name)] = codec
    return index


def codec_by_key(key: str | int) -> Codec | None:
    if isinstance(key, bool):
        return None
    return _codec_index().get(str(key) if isinstance(key, int) else _norm(key))


@dataclass(frozen=True)
class CodecSetting:
    codec: Codec
    priority: int
    enabled: bool = True
    bps: int | None = None
    dtx: bool | None = None
    vbr: bool | None = None


# --- ZRTP ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZrtpList:
    """One ZRTP algorithm list: section name, item element name, and ``name -> id``."""

    section: str
    item: str
    ids: tuple[tuple[str, int], ...]
    old_item: tuple[tuple[Version, str], ...] = ()


# Ids from Zoiper's public docs; algorithms the docs mark "not yet supported" are refused.
ZRTP_LISTS: tuple[ZrtpList, ...] = (
    ZrtpList("hash_algorithms", "hash_algorithm", (("S256", 0), ("S384", 1))),
    ZrtpList("cipher_algorithms", "cipher_algorithm",
             (("AES1", 0), ("AES2", 1), ("AES3", 2), ("2FS1", 3), ("2FS2", 4), ("2FS3", 5))),
    ZrtpList("auth_tags", "auth_tag", (("HS32", 0), ("HS80", 1))),
    ZrtpList("key_agreement_methods", "key_agreement",
             (("DH3K", 0), ("DH2K", 1), ("EC25", 2), ("EC38", 3)),
             old_item=((_V14, "key_agreement_method"),)),
    ZrtpList("sas_encodings", "sas_encoding", (("B32", 0), ("B256", 1))),
)
#: The seed writes the cipher ``AES51`` with id 0; accept it as the documented ``AES1``.
_ZRTP_ALIASES = {"AES51": "AES1"}


@dataclass(frozen=True)
class ZrtpItem:
    name: str
    id: int
    priority: int
    selected: bool = True


@dataclass(frozen=True)
class ZrtpSetting:
    enabled: bool
    lists: tuple[tuple[str, tuple[ZrtpItem, ...]], ...] = ()


def coerce_codecs(value: Any, where: str) -> tuple[CodecSetting, ...]:
    if not isinstance(value, list):
        raise _err(where, "codecs", value, "a list of codec names or ids, in priority order")
    allowed = ", ".join(c.name for c in CODECS)
    result: list[CodecSetting] = []
    seen: set[int] = set()
    for index, item in enumerate(value, start=1):
        options: dict[str, Any] = {}
        if isinstance(item, dict):
            options = dict(item)
            key = options.pop("codec", None)
        else:
            key = item
        codec = codec_by_key(key) if isinstance(key, str | int) else None
        if codec is None:
            raise _err(where, f"codecs[{index}]", key, allowed)
        if codec.id in seen:
            raise ConfigError(f"{where}: codec {codec.name!r} is listed twice")
        seen.add(codec.id)
        unknown = set(options) - {"enabled", "bps", "dtx", "vbr"}
        if unknown:
            raise ConfigError(
                f"{where}: codec {codec.name!r} has unknown keys {sorted(unknown)}; "
                "allowed: codec, enabled, bps, dtx, vbr"
            )
        flags: dict[str, bool | None] = {}
        for flag in ("enabled", "dtx", "vbr"):
            if flag in options:
                flags[flag] = _as_bool(options[flag])
                if flags[flag] is None:
                    raise _err(where, f"codecs[{index}].{flag}", options[flag], "true, false")
        bps = None
        if "bps" in options:
            bps = _as_uint(options["bps"])
            if bps is None:
                raise _err(where, f"codecs[{index}].bps", options["bps"], "an unsigned integer")
        result.append(CodecSetting(codec, index, flags.get("enabled", True) is not False,
                                   bps, flags.get("dtx"), flags.get("vbr")))
    return tuple(result)


def coerce_zrtp(value: Any, where: str) -> ZrtpSetting:
    if isinstance(value, ZrtpSetting):
        return value
    if not isinstance(value, dict):
        raise _err(where, "zrtp", value, "a table with enabled and algorithm lists")
    known = {z.section: z for z in ZRTP_LISTS}
    unknown = set(value) - set(known) - {"enabled"}
    if unknown:
        raise ConfigError(f"{where}: zrtp has unknown keys {sorted(unknown)}; "
                          f"allowed: enabled, {', '.join(known)}")
    enabled = _as_bool(value.get("enabled", True))
    if enabled is None:
        raise _err(where, "zrtp/enabled", value.get("enabled"), "true, false")
    lists: list[tuple[str, tuple[ZrtpItem, ...]]] = []
    for spec in ZRTP_LISTS:
        if spec.section not in value:
            continue
        names = value[spec.section]
        if not isinstance(names, list):
            raise _err(where, f"zrtp/{spec.section}", names, "a list of names")
        ids = dict(spec.ids)
        items = []
        for priority, raw in enumerate(names):
            name = str(raw).upper()
            name = _ZRTP_ALIASES.get(name, name)
            if name not in ids:
                raise _err(where, f"zrtp/{spec.section}", raw, ", ".join(ids))
            items.append(ZrtpItem(name, ids[name], priority))
        lists.append((spec.section, tuple(items)))
    return ZrtpSetting(enabled, tuple(lists))
