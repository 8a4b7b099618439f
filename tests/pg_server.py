"""A real, throwaway PostgreSQL server for the tests (Debian's postgresql package).

``initdb``/``pg_ctl`` refuse to run as root, so as root the server runs as the
``postgres`` system user (created by the Debian package) on a temporary data
directory and a free loopback port, with trust authentication on loopback only.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time

from devkit.broker import free_port, wait_for_port


class PostgresUnavailable(RuntimeError):
    pass


def _bin_dir() -> str:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        raise PostgresUnavailable("PostgreSQL server binaries not found (apt-get install postgresql)")
    return os.path.dirname(candidates[-1])


class PostgresServer:
    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="ledger-pg-")
        self.data = os.path.join(self.dir, "data")
        self.as_root = os.geteuid() == 0
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        cmd = list(argv)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(argv[:2])} failed: {done.stderr.strip()[-500:]}")

    def start(self) -> "PostgresServer":
        if self.as_root:
            shutil.chown(self.dir, user="postgres")
        self._run(f"{self.bin}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off -c max_connections=200"
        self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-o", options, "-l", os.path.join(self.dir, "log"), "-w", "start")
        if not wait_for_port("127.0.0.1", self.port, 30):
            raise PostgresUnavailable("PostgreSQL did not start")
        return self

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        except PostgresUnavailable:
            pass
        time.sleep(0.2)
        shutil.rmtree(self.dir, ignore_errors=True)
