"""Fixtures for the frontend end-to-end tests: one `Platform` (nginx + module, two mailstored
backends, roles DB, redis-server, slapd) per test module, configured by the module's
`FRONTEND = {...}` (keyword arguments of `frontend.Platform`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from frontend import Platform  # noqa: E402
from harness import HarnessError, Server  # noqa: E402


@pytest.fixture(scope="module")
def fe(request, material, tmp_path_factory):
    backends: list[Server] = []

    def make_server(frontend: dict) -> Server:
        s = Server(tmp_path_factory.mktemp("backend"), material, tls=False, frontend=frontend)
        s.start()
        backends.append(s)
        return s

    platform = None
    try:
        platform = Platform(material, make_server, **getattr(request.module, "FRONTEND", {}))
        platform.start()
    except HarnessError as e:
        problems = platform.stop() if platform else []
        for s in backends:
            s.stop()
        pytest.fail(f"{e}{''.join(chr(10) + p for p in problems)}", pytrace=False)
    yield platform
    problems = platform.stop()
    for s in backends:
        if s.proc is not None and s.proc.poll() is not None and s.proc.returncode not in (0, -9):
            problems.append(f"mailstored died with status {s.proc.returncode}; log tail:\n{s.log_tail()}")
        s.stop()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
    platform.cleanup()
