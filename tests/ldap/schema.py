"""Schema and directory content of the test slapd, as text (LDIF and slapd.conf schema syntax).

Two trees: ``dc=example,dc=com`` shaped like an OpenLDAP directory, and ``DC=corp,DC=example``
shaped like Active Directory (attributes carry AD's names and OIDs; ``memberOf`` is stored,
where AD computes it).
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

#: An attribute for SIP passwords and a class for per-account entries: the schema zengine
#: ships (contrib/ldap/, shown in docs/backends/ldap.md), loaded by every test slapd.
ZENGINE_SCHEMA = (Path(__file__).resolve().parents[2] / "contrib" / "ldap"
                  / "zengine-sip.schema").read_text(encoding="utf-8")

#: The Active Directory attributes the AD preset reads, with Microsoft's own OIDs.
AD_SCHEMA = """\
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'
    EQUALITY caseIgnoreMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl'
    EQUALITY integerMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.102 NAME 'memberOf'
    EQUALITY distinguishedNameMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )
attributetype ( 1.2.840.113556.1.4.721 NAME 'ipPhone'
    EQUALITY caseIgnoreMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.722 NAME 'otherIpPhone'
    EQUALITY caseIgnoreMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.2.840.113556.1.2.423 NAME 'extensionAttribute1'
    EQUALITY caseExactMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.3.23 NAME 'container' SUP top STRUCTURAL
    MUST ( cn ) )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP organizationalPerson STRUCTURAL
    MAY ( sAMAccountName $ userPrincipalName $ userAccountControl $ memberOf $ displayName $
          mail $ ipPhone $ otherIpPhone $ extensionAttribute1 $ userPassword ) )
objectclass ( 1.2.840.113556.1.5.8 NAME 'group' SUP top STRUCTURAL
    MUST ( cn )
    MAY ( member $ sAMAccountName $ description ) )
"""

BASE = "dc=example,dc=com"
AD_BASE = "DC=corp,DC=example"
SERVICE_DN = f"cn=zengine,{BASE}"
SERVICE_PASSWORD = "service-secret-Zq7"
#: A read-only account for phones (the directory as a Zoiper5 contact service).
PHONEBOOK_DN = f"cn=phonebook,{BASE}"
PHONEBOOK_PASSWORD = "phonebook-ro-Wq2&<"
AD_SERVICE_DN = f"CN=svc-zengine,CN=Users,{AD_BASE}"
AD_SERVICE_PASSWORD = "ad-service-secret-Kp3"

#: Login passwords of the test users; SIP passwords are separate values.
PASSWORDS = {
    "alice": "alice-pw-1",
    "bob": "bob-pw-2",
    "carol": "carol-pw-3",
    "dave": "dave-pw-4",
    "smith, j*": "smith-pw-5",
    "twin": "twin-pw-6",
    "jörg": "jörg-pässwörd",
}
AD_PASSWORDS = {"jdoe": "jdoe-pw-A", "mroe": "mroe-pw-B", "olduser": "olduser-pw-C"}


def ssha(password: str) -> str:
    """An ``{SSHA}`` userPassword value, as slappasswd makes it (SHA-1 of password + salt)."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode("utf-8") + salt, usedforsecurity=False).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


def _ldif_value(attribute: str, value: str) -> str:
    # Non-ASCII or special leading characters need base64 in LDIF (RFC 2849).
    if value.isascii() and not value.startswith((" ", ":", "<")) and not value.endswith(" "):
        return f"{attribute}: {value}"
    return f"{attribute}:: {base64.b64encode(value.encode('utf-8')).decode('ascii')}"


def _entry(dn: str, attributes: list[tuple[str, str]]) -> str:
    lines = [_ldif_value("dn", dn)] + [_ldif_value(a, v) for a, v in attributes]
    return "\n".join(lines) + "\n"


def _person(uid: str, dn_uid: str, display: str, phones: list[str],
            sip_password: str | None, ou: str = "people") -> str:
    attributes = [("objectClass", "inetOrgPerson"), ("objectClass", "sipUser"),
                  ("uid", uid), ("cn", display), ("sn", display.split()[-1]),
                  ("displayName", display), ("userPassword", ssha(PASSWORDS[uid]))]
    attributes += [("telephoneNumber", phone) for phone in phones]
    if sip_password is not None:
        attributes.append(("sipPassword", sip_password))
    return _entry(f"uid={dn_uid},ou={ou},{BASE}", attributes)


def example_ldif() -> str:
    """The OpenLDAP-shaped tree."""
    people = f"ou=people,{BASE}"
    entries = [
        _entry(BASE, [("objectClass", "dcObject"), ("objectClass", "organization"),
                      ("dc", "example"), ("o", "Example")]),
        _entry(SERVICE_DN, [("objectClass", "organizationalRole"),
                            ("objectClass", "simpleSecurityObject"), ("cn", "zengine"),
                            ("userPassword", ssha(SERVICE_PASSWORD))]),
        _entry(PHONEBOOK_DN, [("objectClass", "organizationalRole"),
                              ("objectClass", "simpleSecurityObject"), ("cn", "phonebook"),
                              ("userPassword", ssha(PHONEBOOK_PASSWORD))]),
        *(_entry(f"ou={ou},{BASE}", [("objectClass", "organizationalUnit"), ("ou", ou)])
          for ou in ("people", "contractors", "groups", "sip")),
        _person("alice", "alice", "Alice Example", ["1001"], "alice-sip-secret"),
        _person("bob", "bob", "Bob Builder", ["2001", "2002"], "bob-sip-secret"),
        _person("carol", "carol", "Carol NoSip", ["3001"], None),
        _person("dave", "dave", "Dave Devices", [], None),
        # Escaping must make this user work in both modes: ',' in the DN, '*' in filters.
        _person("smith, j*", "smith\\, j*", "Jay Smith", ["5001"], "smith-sip-secret"),
        _person("twin", "twin", "Twin One", ["6001"], "twin-sip"),
        _person("twin", "twin", "Twin Two", ["6002"], "twin-sip", ou="contractors"),
        _person("jörg", "jörg", "Jörg Müller", ["7001"], "jörg-sip-secret"),
        # Dave's accounts are entries of their own, found by a sub-search on owner.
        *(_entry(f"cn={cn},ou=sip,{BASE}",
                 [("objectClass", "sipAccount"), ("cn", cn), ("telephoneNumber", cn),
                  ("displayName", f"Dave line {cn}"), ("sipPassword", f"dave-sip-{cn}"),
                  ("owner", f"uid=dave,{people}")])
          for cn in ("4001", "4002", "4003")),
        _entry(f"cn=sip-office,ou=groups,{BASE}",
               [("objectClass", "groupOfNames"), ("cn", "sip-office"),
                ("member", f"uid=alice,{people}"), ("member", f"uid=bob,{people}")]),
        _entry(f"cn=sip-mobile,ou=groups,{BASE}",
               [("objectClass", "groupOfNames"), ("cn", "sip-mobile"),
                ("member", f"uid=bob,{people}"), ("member", f"uid=dave,{people}")]),
    ]
    return "\n".join(entries)


def _ad_user(sam: str, display: str, control: int, groups: list[str], phone: str | None,
             other_phones: list[str], sip_password: str | None,
             password: str) -> str:
    attributes = [("objectClass", "top"), ("objectClass", "person"),
                  ("objectClass", "organizationalPerson"), ("objectClass", "user"),
                  ("cn", display), ("sn", display.split()[-1]), ("displayName", display),
                  ("sAMAccountName", sam), ("userPrincipalName", f"{sam}@corp.example"),
                  ("userAccountControl", str(control)), ("userPassword", ssha(password))]
    attributes += [("memberOf", f"CN={group},CN=Users,{AD_BASE}") for group in groups]
    if phone:
        attributes.append(("ipPhone", phone))
    attributes += [("otherIpPhone", other) for other in other_phones]
    if sip_password:
        attributes.append(("extensionAttribute1", sip_password))
    return _entry(f"CN={display},CN=Users,{AD_BASE}", attributes)


def ad_ldif() -> str:
    """The Active-Directory-shaped tree."""
    users = f"CN=Users,{AD_BASE}"
    entries = [
        _entry(AD_BASE, [("objectClass", "dcObject"), ("objectClass", "organization"),
                         ("dc", "corp"), ("o", "Corp")]),
        _entry(users, [("objectClass", "container"), ("cn", "Users")]),
        _entry(AD_SERVICE_DN, [("objectClass", "top"), ("objectClass", "person"),
                               ("objectClass", "organizationalPerson"), ("objectClass", "user"),
                               ("cn", "svc-zengine"), ("sn", "zengine"),
                               ("sAMAccountName", "svc-zengine"), ("userAccountControl", "66048"),
                               ("userPassword", ssha(AD_SERVICE_PASSWORD))]),
        # 512 = NORMAL_ACCOUNT; 514 = NORMAL_ACCOUNT | ACCOUNTDISABLE.
        _ad_user("jdoe", "John Doe", 512, ["SIP Office"], "8001", [], "jdoe-sip-secret",
                 AD_PASSWORDS["jdoe"]),
        _ad_user("mroe", "Mary Roe", 66048, ["SIP Office", "SIP Mobile"], "8002", ["8003"],
                 "mroe-sip-secret", AD_PASSWORDS["mroe"]),
        _ad_user("olduser", "Old User", 514, ["SIP Office"], "8009", [], "old-sip-secret",
                 AD_PASSWORDS["olduser"]),
        _entry(f"CN=SIP Office,{users}", [("objectClass", "group"), ("cn", "SIP Office"),
                                          ("sAMAccountName", "SIP Office")]),
        _entry(f"CN=SIP Mobile,{users}", [("objectClass", "group"), ("cn", "SIP Mobile"),
                                          ("sAMAccountName", "SIP Mobile")]),
    ]
    return "\n".join(entries)
