"""Fixtures for the Postfix delivery-routing tests: one `Stack` per test module — two mailstored
backends (a1 and its partner a2), a roles DB made with mailctl, the socketmap server on it and a
private Postfix that asks the socketmap for every recipient's transport."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import HarnessError, Server  # noqa: E402
from postfix import Postfix, RolesDb, Socketmap, require_tools  # noqa: E402


@dataclass
class Stack:
    a1: Server
    a2: Server
    roles: RolesDb
    socketmap: Socketmap
    postfix: Postfix

    def diagnostics(self) -> str:
        return (f"\n--- postfix maillog ---\n{self.postfix.log_tail()}"
                f"\n--- postfix queue ---\n{self.postfix.queue_listing()}"
                f"\n--- socketmap log ---\n{self.socketmap.log_tail()}")


@pytest.fixture(scope="module")
def stack(material, tmp_path_factory):
    try:
        require_tools()
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    servers: list[Server] = []
    socketmap = postfix = None
    try:
        for _ in range(2):
            s = Server(tmp_path_factory.mktemp("backend"), material, tls=False)
            s.start()
            servers.append(s)
        a1, a2 = servers
        roles = RolesDb(tmp_path_factory.mktemp("roles"))
        roles.add_backend("a1", a1)
        roles.add_backend("a2", a2, partner="a1")
        roles.roles("backend", "set", "a1", "--partner", "a2")
        for user in ("demo1", "demo2", "demo3"):
            roles.set_user(user, "a1")
        socketmap = Socketmap(roles.dir, tmp_path_factory.mktemp("socketmap")).start()
        postfix = Postfix(socketmap.port).start()
    except HarnessError as e:
        for p in (postfix, socketmap, *servers):
            if p is not None:
                p.stop()
        pytest.fail(str(e), pytrace=False)
    yield Stack(a1, a2, roles, socketmap, postfix)
    problems = []
    if not socketmap.running():
        problems.append(f"the socketmap server died during the tests:\n{socketmap.log_tail()}")
    panics = [line for line in postfix.log_text().splitlines()
              if ("panic:" in line or "fatal:" in line) and "postmap" not in line and "postqueue" not in line]
    if panics:
        problems.append("Postfix logged fatal errors:\n" + "\n".join(panics))
    postfix.stop()
    socketmap.stop()
    for s in servers:
        if s.proc is not None and s.proc.poll() is not None and s.proc.returncode not in (0, -9):
            problems.append(f"mailstored died with status {s.proc.returncode}; log tail:\n{s.log_tail()}")
        s.stop()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
    postfix.cleanup()
