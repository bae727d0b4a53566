"""Fields only Zoiper5 documents: configurable, emitted for desktop, never for mobile."""

from __future__ import annotations

import base64
from pathlib import Path

from lxml import etree

from tests.clients.conftest import PASSWORD, make_settings, open_client
from zengine.models import Version
from zengine.testing import check_structure

DESKTOP_ONLY = {
    "save_password": False,
    "send_typing_notification": False,
    "SIP_use_cisco": True,
    "SIP_cisco_device_name": "SEP001122334455",
}


def test_desktop_only_fields_reach_desktop_and_not_mobile(users_file: Path) -> None:
    settings = make_settings(users_file, defaults={"codecs": ["g722"], "rtcp_profile_type": "AVPF",
                                                   **DESKTOP_ONLY})
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    with open_client(settings) as client:
        desktop = client.get("/desktop", headers={"Authorization": f"Basic {basic}"}).content
        mobile = client.get("/id.php", params={"u": "alice", "p": PASSWORD,
                                               "v": "1.14"}).content
    account = etree.fromstring(desktop).find("accounts/account")
    assert account is not None
    tags = [child.tag for child in account]
    assert account.findtext("rtcp_profile_type") == "avpf"
    assert account.findtext("save_password") == "false"
    assert account.findtext("SIP_cisco_device_name") == "SEP001122334455"
    # Placed where the desktop documentation lists them.
    assert tags.index("save_password") == tags.index("password") + 1
    assert tags.index("rtcp_profile_type") == tags.index("protocol") + 1
    assert check_structure(desktop, "desktop", Version(5, 0)) == []
    for field in DESKTOP_ONLY:
        assert f"<{field}>".encode() not in mobile
    assert check_structure(mobile, "mobile", Version(1, 14)) == []


def test_rtcp_profile_type_is_a_mobile_field_since_1_14(users_file: Path) -> None:
    # Android public-docs 1.14.3 documents it and its example dump carries it.
    settings = make_settings(users_file, defaults={"rtcp_profile_type": "both"})
    with open_client(settings) as client:
        new = client.get("/id.php", params={"u": "alice", "p": PASSWORD, "v": "1.14"}).content
        old = client.get("/id.php", params={"u": "alice", "p": PASSWORD, "v": "1.13"}).content
    account = etree.fromstring(new).find("accounts/account")
    assert account is not None
    tags = [child.tag for child in account]
    assert account.findtext("rtcp_profile_type") == "both"
    assert tags.index("rtcp_profile_type") == tags.index("protocol") + 1
    assert check_structure(new, "mobile", Version(1, 14)) == []
    assert b"rtcp_profile_type" not in old
    assert check_structure(old, "mobile", Version(1, 13)) == []
