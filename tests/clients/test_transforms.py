"""The mobile transform steps: generated from the catalogue, one per version, composable."""

from __future__ import annotations

import copy

from zengine import catalog
from zengine.models import ClientInfo, Document, Element, Transform, Version
from zengine.transforms import apply_transforms
from zengine_zoiper import mobile_transforms
from zengine_zoiper.mobile_transforms import element_path, plans, steps

V = Version.parse


def test_one_step_per_version_that_changed_something() -> None:
    versions = [str(s.version) for s in steps()]
    assert versions == ["1.5", "1.6", "1.7", "1.8", "1.9", "1.10", "1.11", "1.12", "1.14"]
    assert all(s.family == "mobile" and s.description for s in steps())


def test_every_since_field_is_dropped_by_exactly_its_own_step() -> None:
    dropped: dict[str, Version] = {}
    for plan in plans():
        for removal in plan.removals:
            assert removal.path not in dropped
            dropped[removal.path] = plan.version
    for field in (*catalog.ACCOUNT_FIELDS, *catalog.OPTIONS_FIELDS):
        if field.since is None:
            assert field.path not in dropped
        else:
            assert dropped[element_path(field, field.since)] == field.since


def test_the_documented_renames_before_1_14() -> None:
    (plan,) = [p for p in plans() if p.version == V("1.14")]
    # Renames the example server marks "Changed in v1.14": older clients get the old name only.
    assert {(r.path, r.old_name) for r in plan.renames} == {
        ("msrp/enabled", "enable_msrp"),
        ("msrp/enable_relay", "enable_msrp_relay"),
    }
    # Renames no source dates: older clients get both spellings.
    assert {(c.path, c.old_name) for c in plan.copies} == {
        ("voicemail_transfer_extension", "voicemaile_transfer_extension"),
        ("SIP_callerId", "SIP_callerid"),
        ("IAX2_callerId", "IAX2_callerid"),
    }
    assert [(i.section, i.item, i.old_item) for i in plan.item_renames] == [
        ("key_agreement_methods", "key_agreement", "key_agreement_method")]


def test_a_renamed_field_is_dropped_under_its_old_name() -> None:
    # msrp/enabled appeared in 1.8 as enable_msrp and was renamed in 1.14.
    (plan,) = [p for p in plans() if p.version == V("1.8")]
    assert "msrp/enable_msrp" in {r.path for r in plan.removals}


def _doc(version: str, accounts: int = 2) -> Document:
    def account() -> Element:
        return Element("account", children=[
            Element("SIP_callerId", "Alice"),
            Element("SIP_use_reg_event", "true"),
            Element("msrp", children=[Element("enabled", "true"),
                                      Element("relay_uri", "msrp://r")]),
            Element("zrtp", children=[Element("key_agreement_methods", children=[
                Element("key_agreement", children=[Element("name", "DH3K")]),
                Element("key_agreement", children=[Element("name", "EC25")])])]),
        ])
    root = Element("options", children=[
        Element("prov_version", version),
        Element("accounts", children=[account() for _ in range(accounts)]),
        Element("diagnostics", children=[Element("enable_debug_log", "false")]),
    ])
    return Document(root=root, client=ClientInfo("mobile", V(version)))


def _tags(element: Element) -> list[str]:
    return [node.tag for node in element.iter()]


def test_every_account_element_is_transformed() -> None:
    document = _doc("1.13", accounts=3)
    apply_transforms(document, steps())
    accounts = document.root.find("accounts")
    assert accounts is not None and len(accounts.children) == 3
    for account in accounts.children:
        assert account.find("SIP_callerid") is not None
        assert account.find("msrp/enable_msrp") is not None
        items = account.find("zrtp/key_agreement_methods")
        assert items is not None
        assert [i.tag for i in items.children] == ["key_agreement_method"] * 2


def test_steps_compose_newest_first() -> None:
    document = _doc("1.7")
    apply_transforms(document, steps())
    tags = _tags(document.root)
    # 1.14 renamed msrp/enabled, then the 1.8 step dropped it by its old name.
    assert "enable_msrp" not in tags and "enabled" not in tags
    assert "relay_uri" in tags  # no since-version: kept, and so is its section
    assert "zrtp" not in tags and "SIP_use_reg_event" not in tags
    assert "SIP_callerid" in tags and "diagnostics" in tags


def test_a_section_left_empty_goes_too() -> None:
    document = _doc("1.4")
    apply_transforms(document, steps())
    assert document.root.find("diagnostics") is None


def test_no_step_for_the_newest_or_newer_versions() -> None:
    for version in ("1.14", "1.99"):
        document = _doc(version)
        before = copy.deepcopy(document.root)
        apply_transforms(document, steps())
        assert document.root == before


def test_steps_only_touch_the_mobile_family() -> None:
    document = _doc("1.4")
    document.client = ClientInfo("desktop", V("1.4"))
    before = copy.deepcopy(document.root)
    apply_transforms(document, steps())
    assert document.root == before


def test_plans_follow_any_catalogue() -> None:
    # Two renames of one field, and a field added later in a section: like migrations.
    fields = [
        catalog.Field("a/x", "bool", since=V("1.2")),
        catalog.Field("b", "string", old_names=((V("1.3"), "b_old"), (V("1.5"), "b_mid"))),
    ]
    result = {str(p.version): p for p in plans(fields, zrtp_lists=[])}
    assert sorted(result, key=V) == ["1.2", "1.3", "1.5"]
    assert [(r.path, r.old_name) for r in result["1.5"].renames] == [("b", "b_mid")]
    assert [(r.path, r.old_name) for r in result["1.3"].renames] == [("b_mid", "b_old")]
    assert [r.path for r in result["1.2"].removals] == ["a/x"]


def test_registered_through_the_transform_hook() -> None:
    from zengine.runtime import build_runtime
    from zengine.settings import settings_from_mapping
    from zengine.testing import plugin_list

    runtime = build_runtime(settings_from_mapping({}, environ={}), load_entrypoints=False,
                            plugins=plugin_list("zoiper"))
    runtime.start()
    try:
        registered = [(t.family, t.version) for t in runtime.transforms]
        assert registered == [(t.family, t.version) for t in steps()]
        assert all(isinstance(t, Transform) for t in runtime.transforms)
        assert mobile_transforms.OLDEST == V("1.1")
    finally:
        runtime.stop()
