"""PBX tables as their projects publish them, for mapping-mode tests.

* Kamailio ``subscriber`` (table version 7) from kamctl's per-database creation scripts
  (``utils/kamctl/{mysql,postgres,db_sqlite}/auth_db-create.sql``): the DDL differs per database,
  so each dialect gets the project's own statement.
* Asterisk realtime PJSIP ``ps_auths`` and ``ps_endpoints`` as ``contrib/ast-db-manage``
  (revision 43956d550a44, "Add tables for pjsip") defines them with SQLAlchemy.
"""

from __future__ import annotations

import sqlalchemy as sa

KAMAILIO_SUBSCRIBER = {
    "mysql": [
        "CREATE TABLE `subscriber` ("
        " `id` INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,"
        " `username` VARCHAR(64) DEFAULT '' NOT NULL,"
        " `domain` VARCHAR(64) DEFAULT '' NOT NULL,"
        " `password` VARCHAR(64) DEFAULT '' NOT NULL,"
        " `ha1` VARCHAR(128) DEFAULT '' NOT NULL,"
        " `ha1b` VARCHAR(128) DEFAULT '' NOT NULL,"
        " CONSTRAINT account_idx UNIQUE (`username`, `domain`))",
        "CREATE INDEX username_idx ON subscriber (`username`)",
    ],
    "postgresql": [
        "CREATE TABLE subscriber ("
        " id SERIAL PRIMARY KEY NOT NULL,"
        " username VARCHAR(64) DEFAULT '' NOT NULL,"
        " domain VARCHAR(64) DEFAULT '' NOT NULL,"
        " password VARCHAR(64) DEFAULT '' NOT NULL,"
        " ha1 VARCHAR(128) DEFAULT '' NOT NULL,"
        " ha1b VARCHAR(128) DEFAULT '' NOT NULL,"
        " CONSTRAINT subscriber_account_idx UNIQUE (username, domain))",
        "CREATE INDEX subscriber_username_idx ON subscriber (username)",
    ],
    "sqlite": [
        "CREATE TABLE subscriber ("
        " id INTEGER PRIMARY KEY NOT NULL,"
        " username VARCHAR(64) DEFAULT '' NOT NULL,"
        " domain VARCHAR(64) DEFAULT '' NOT NULL,"
        " password VARCHAR(64) DEFAULT '' NOT NULL,"
        " ha1 VARCHAR(128) DEFAULT '' NOT NULL,"
        " ha1b VARCHAR(128) DEFAULT '' NOT NULL,"
        " CONSTRAINT subscriber_account_idx UNIQUE (username, domain))",
        "CREATE INDEX subscriber_username_idx ON subscriber (username)",
    ],
}


def create_kamailio(engine: sa.Engine) -> None:
    dialect = "mysql" if engine.dialect.name in ("mysql", "mariadb") else engine.dialect.name
    with engine.begin() as conn:
        for statement in KAMAILIO_SUBSCRIBER[dialect]:
            conn.execute(sa.text(statement))


def drop_kamailio(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE subscriber"))


YESNO = ["yes", "no"]


def _yesno(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Enum(*YESNO, name="yesno_values"))


def asterisk_metadata() -> sa.MetaData:
    meta = sa.MetaData()
    sa.Table(
        "ps_endpoints", meta,
        sa.Column("id", sa.String(40), nullable=False, unique=True),
        sa.Column("transport", sa.String(40)),
        sa.Column("aors", sa.String(200)),
        sa.Column("auth", sa.String(40)),
        sa.Column("context", sa.String(40)),
        sa.Column("disallow", sa.String(200)),
        sa.Column("allow", sa.String(200)),
        _yesno("direct_media"),
        sa.Column("connected_line_method",
                  sa.Enum("invite", "reinvite", "update",
                          name="pjsip_connected_line_method_values")),
        sa.Column("direct_media_method",
                  sa.Enum("invite", "reinvite", "update",
                          name="pjsip_connected_line_method_values")),
        sa.Column("direct_media_glare_mitigation",
                  sa.Enum("none", "outgoing", "incoming",
                          name="pjsip_direct_media_glare_mitigation_values")),
        _yesno("disable_direct_media_on_nat"),
        sa.Column("dtmf_mode", sa.Enum("rfc4733", "inband", "info",
                                       name="pjsip_dtmf_mode_values")),
        sa.Column("external_media_address", sa.String(40)),
        _yesno("force_rport"),
        _yesno("ice_support"),
        sa.Column("identify_by", sa.Enum("username", name="pjsip_identify_by_values")),
        sa.Column("mailboxes", sa.String(40)),
        sa.Column("moh_suggest", sa.String(40)),
        sa.Column("outbound_auth", sa.String(40)),
        sa.Column("outbound_proxy", sa.String(40)),
        _yesno("rewrite_contact"),
        _yesno("rtp_ipv6"),
        _yesno("rtp_symmetric"),
        _yesno("send_diversion"),
        _yesno("send_pai"),
        _yesno("send_rpid"),
        sa.Column("timers_min_se", sa.Integer),
        sa.Column("timers", sa.Enum("forced", "no", "required", "yes",
                                    name="pjsip_timer_values")),
        sa.Column("timers_sess_expires", sa.Integer),
        sa.Column("callerid", sa.String(40)),
        sa.Column("callerid_privacy", sa.Enum(
            "allowed_not_screened", "allowed_passed_screened", "allowed_failed_screened",
            "allowed", "prohib_not_screened", "prohib_passed_screened",
            "prohib_failed_screened", "prohib", "unavailable",
            name="pjsip_cid_privacy_values")),
        sa.Column("callerid_tag", sa.String(40)),
        sa.Column("100rel", sa.Enum("no", "required", "yes", name="pjsip_100rel_values")),
        _yesno("aggregate_mwi"),
        _yesno("trust_id_inbound"),
        _yesno("trust_id_outbound"),
        _yesno("use_ptime"),
        _yesno("use_avpf"),
        sa.Column("media_encryption", sa.Enum("no", "sdes", "dtls",
                                              name="pjsip_media_encryption_values")),
        _yesno("inband_progress"),
        sa.Column("call_group", sa.String(40)),
        sa.Column("pickup_group", sa.String(40)),
        sa.Column("named_call_group", sa.String(40)),
        sa.Column("named_pickup_group", sa.String(40)),
        sa.Column("device_state_busy_at", sa.Integer),
        _yesno("fax_detect"),
        _yesno("t38_udptl"),
        sa.Column("t38_udptl_ec", sa.Enum("none", "fec", "redundancy",
                                          name="pjsip_t38udptl_ec_values")),
        sa.Column("t38_udptl_maxdatagram", sa.Integer),
        _yesno("t38_udptl_nat"),
        _yesno("t38_udptl_ipv6"),
        sa.Column("tone_zone", sa.String(40)),
        sa.Column("language", sa.String(40)),
        _yesno("one_touch_recording"),
        sa.Column("record_on_feature", sa.String(40)),
        sa.Column("record_off_feature", sa.String(40)),
        sa.Column("rtp_engine", sa.String(40)),
        _yesno("allow_transfer"),
        _yesno("allow_subscribe"),
        sa.Column("sdp_owner", sa.String(40)),
        sa.Column("sdp_session", sa.String(40)),
        sa.Column("tos_audio", sa.Integer),
        sa.Column("tos_video", sa.Integer),
        sa.Column("cos_audio", sa.Integer),
        sa.Column("cos_video", sa.Integer),
        sa.Column("sub_min_expiry", sa.Integer),
        sa.Column("from_domain", sa.String(40)),
        sa.Column("from_user", sa.String(40)),
        sa.Column("mwi_fromuser", sa.String(40)),
        sa.Column("dtls_verify", sa.String(40)),
        sa.Column("dtls_rekey", sa.String(40)),
        sa.Column("dtls_cert_file", sa.String(200)),
        sa.Column("dtls_private_key", sa.String(200)),
        sa.Column("dtls_cipher", sa.String(200)),
        sa.Column("dtls_ca_file", sa.String(200)),
        sa.Column("dtls_ca_path", sa.String(200)),
        sa.Column("dtls_setup", sa.Enum("active", "passive", "actpass",
                                        name="pjsip_dtls_setup_values")),
        _yesno("srtp_tag_32"),
        sa.Index("ps_endpoints_id", "id"),
    )
    sa.Table(
        "ps_auths", meta,
        sa.Column("id", sa.String(40), nullable=False, unique=True),
        sa.Column("auth_type", sa.Enum("md5", "userpass", name="pjsip_auth_type_values")),
        sa.Column("nonce_lifetime", sa.Integer),
        sa.Column("md5_cred", sa.String(40)),
        sa.Column("password", sa.String(80)),
        sa.Column("realm", sa.String(40)),
        sa.Column("username", sa.String(40)),
        sa.Index("ps_auths_id", "id"),
    )
    return meta
