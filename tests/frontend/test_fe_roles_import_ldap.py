"""`mailctl roles import-ldap` against a real slapd (issue 4, Deliver 2): users and their backend
from an LDAP attribute, in one roles transaction; the first bad entry is named by its DN and
nothing changes.

The backend is read from `mailHost` (misc.schema's inetLocalMailRecipient, the attribute
sendmail/Postfix LDAP routing uses for "the host that holds this mailbox"), so this test's slapd
loads misc.schema on top of the harness's schemas. It is a slapd of its own (not the platform's):
no nginx is needed to test an import.
"""

from __future__ import annotations

import subprocess

import pytest

from frontend import (LDAP_ADMIN_DN, LDAP_ADMIN_PASSWORD, LDAP_SCHEMAS, MAILCTL, SUFFIX, HOST, Roles,
                      Slapd, mailctl, private_dir, require_tools)

# More than slapd's default size limit (500) for non-root binds. The test slapd lifts the limit on
# the total of a *paged* search only (`size.prtotal`, which otherwise defaults to the hard limit),
# as a directory that serves bulk readers would: an import that doesn't page gets sizeLimitExceeded.
GOOD = 620
LIMITS = ["limits anonymous size.soft=500 size.hard=500 size.prtotal=unlimited"]


def person(uid: str, ou: str, host: str | None) -> str:
    lines = [f"dn: uid={uid},ou={ou},{SUFFIX}", "objectClass: inetOrgPerson",
             "objectClass: inetLocalMailRecipient", f"uid: {uid}", f"cn: {uid}", f"sn: {uid}"]
    if host is not None:
        lines.append(f"mailHost: {host}")
    return "\n".join(lines) + "\n"


def ou(name: str) -> str:
    return f"dn: ou={name},{SUFFIX}\nobjectClass: organizationalUnit\nou: {name}\n"


# Each bad subtree holds good entries before and after one bad entry.
BAD = {
    "nohost": ("u-nohost", None, "has no mailHost attribute"),
    "unknown": ("u-unknown", "z9", "unknown backend \"z9\""),
    "badname": ("bad/name", "a1", "invalid user name"),
}


@pytest.fixture(scope="module")
def ldap():
    require_tools()
    d = private_dir("ldapimp")
    entries = [ou("mail")] + [person(f"m{i:04d}", "mail", "A1" if i % 2 else "b1") for i in range(GOOD)]
    for name, (uid, host, _) in BAD.items():
        entries += [ou(name), person(f"{name}-first", name, "a1"), person(uid, name, host),
                    person(f"{name}-last", name, "b1")]
    # one user in two entries with different backends
    entries += [ou("dup"), person("twice", "dup", "a1"),
                f"dn: cn=twice-again,ou=dup,{SUFFIX}\nobjectClass: inetOrgPerson\n"
                "objectClass: inetLocalMailRecipient\ncn: twice-again\nsn: x\nuid: twice\nmailHost: b1\n"]
    slapd = Slapd(d / "slapd", {}, schemas=[*LDAP_SCHEMAS, "misc"], extra_entries=entries,
                  database_lines=LIMITS).start()
    pw = d / "bind.password"
    pw.write_text(LDAP_ADMIN_PASSWORD + "\n")
    yield slapd, d
    slapd.stop()


@pytest.fixture
def roles(ldap, tmp_path):
    r = Roles(tmp_path / "roles")
    r.backend("a1", HOST, 1143, 1110, 1024)
    r.backend("b1", HOST, 2143, 2110, 2024)
    return r


def import_ldap(slapd: Slapd, roles: Roles, base: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MAILCTL), "roles", "--db", str(roles.dir), "import-ldap", "--url", slapd.url,
                           "--base", f"{base},{SUFFIX}", "--user-attr", "uid", "--backend-attr", "mailHost",
                           *extra], capture_output=True, text=True, timeout=60)


def listing(roles: Roles) -> list[str]:
    return mailctl("roles", "--db", str(roles.dir), "list").splitlines()


def seq(roles: Roles) -> int:
    return int(mailctl("roles", "--db", str(roles.dir), "seq"))


def test_import_pages_through_the_directory_and_routes_every_user(ldap, roles):
    slapd, _ = ldap
    before = seq(roles)
    dry = import_ldap(slapd, roles, "ou=mail", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would import {GOOD} user(s)" in dry.stderr and f"{GOOD} new" in dry.stderr, dry.stderr
    assert seq(roles) == before and listing(roles) == [], "a dry run changes nothing"

    # anonymous: slapd's size limit of 500 applies, so this only passes with paged results
    done = import_ldap(slapd, roles, "ou=mail")
    assert done.returncode == 0, done.stderr
    lines = listing(roles)
    assert len(lines) == GOOD
    assert "m0001 a1 active" in lines and "m0002 b1 active" in lines, lines[:4]
    assert seq(roles) == before + GOOD

    # re-running changes (and logs) only what changed in the directory: nothing here
    again = import_ldap(slapd, roles, "ou=mail")
    assert again.returncode == 0 and f"{GOOD} unchanged" in again.stderr, again.stderr
    assert seq(roles) == before + GOOD


def test_import_with_a_bind_dn(ldap, roles):
    slapd, d = ldap
    ok = import_ldap(slapd, roles, "ou=mail", "--bind-dn", LDAP_ADMIN_DN,
                     "--bind-password-file", str(d / "bind.password"), "--filter", "(uid=m000*)")
    assert ok.returncode == 0, ok.stderr
    assert len(listing(roles)) == 10


@pytest.mark.parametrize("subtree", sorted(BAD))
def test_first_bad_entry_is_named_and_nothing_changes(ldap, roles, subtree):
    slapd, _ = ldap
    mailctl("roles", "--db", str(roles.dir), "set", "keeper", "a1")
    before = seq(roles)
    uid, _, why = BAD[subtree]
    for extra in ((), ("--dry-run",)):
        bad = import_ldap(slapd, roles, f"ou={subtree}", *extra)
        assert bad.returncode == 1
        assert f"uid={uid},ou={subtree},{SUFFIX}" in bad.stderr, bad.stderr
        assert why in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1, "one line"
    assert seq(roles) == before
    assert listing(roles) == ["keeper a1 active"], "the good entries around it were not imported"


def test_one_user_on_two_backends_is_refused(ldap, roles):
    slapd, _ = ldap
    bad = import_ldap(slapd, roles, "ou=dup")
    assert bad.returncode == 1
    assert "twice" in bad.stderr and f"uid=twice,ou=dup,{SUFFIX}" in bad.stderr, bad.stderr
    assert listing(roles) == []


def test_directory_errors_are_clear(ldap, roles):
    slapd, d = ldap
    wrong = d / "wrong.password"
    wrong.write_text("not-the-password\n")
    bad = import_ldap(slapd, roles, "ou=mail", "--bind-dn", LDAP_ADMIN_DN, "--bind-password-file", str(wrong))
    assert bad.returncode == 1 and "bind as" in bad.stderr and "invalidCredentials" in bad.stderr.replace(" ", ""), \
        bad.stderr
    assert "not-the-password" not in bad.stderr
    missing = import_ldap(slapd, roles, "ou=nosuchou")
    assert missing.returncode == 1 and "ou=nosuchou" in missing.stderr, missing.stderr
    closed = subprocess.run([str(MAILCTL), "roles", "--db", str(roles.dir), "import-ldap", "--url",
                             f"ldap://{HOST}:1", "--base", SUFFIX], capture_output=True, text=True, timeout=60)
    assert closed.returncode == 1 and f"ldap://{HOST}:1" in closed.stderr, closed.stderr
    assert listing(roles) == []
