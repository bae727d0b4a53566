"""zengine ldap backend (work in progress)."""
