"""Fixtures: one mailstored per test module (fresh data dir, free ports), fresh users per test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import HarnessError, Material, Server, require_binary  # noqa: E402


@pytest.fixture(scope="session")
def material(tmp_path_factory) -> Material:
    try:
        require_binary()
        return Material.create(tmp_path_factory.mktemp("material"))
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module")
def server_factory(material, tmp_path_factory):
    """Start servers with non-default settings; all are stopped when the module ends."""
    started: list[Server] = []

    def make(limits: dict | None = None, tls: bool = True, env: dict | None = None,
             store: dict | None = None) -> Server:
        s = Server(tmp_path_factory.mktemp("mailstored"), material, limits=limits, tls=tls,
                   env=env, store=store)
        try:
            s.start()
        except HarnessError as e:
            pytest.fail(str(e), pytrace=False)
        started.append(s)
        return s

    yield make
    problems = []
    for s in started:
        if s.proc is not None and s.proc.poll() is not None and s.proc.returncode not in (0, -9):
            problems.append(f"mailstored died with status {s.proc.returncode} during the tests; "
                            f"log tail:\n{s.log_tail()}")
        s.stop()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def server(server_factory) -> Server:
    return server_factory()


@pytest.fixture
def user(server) -> str:
    return server.new_user()


@pytest.fixture
def imap(server, user):
    m = server.imap(user)
    yield m
    try:
        m.logout()
    except Exception:
        pass
