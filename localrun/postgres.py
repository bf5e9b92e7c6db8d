"""A PostgreSQL server of our own (tests, benches): initdb + pg_ctl in a temp dir on a free port.

Never the machine's PostgreSQL (5432): its data directory, socket and port are ours, and
it is stopped at the end. As root, the server runs as the ``postgres`` user (initdb
refuses root); Debian's postgresql package (``make install``) provides both.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from localrun.processes import free_port, wait_until


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    def __init__(self):
        self.bin = pg_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL binaries not found under /usr/lib/postgresql "
                               "(make install installs Debian's postgresql)")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="archive-pg-"))
        self.data = self.dir / "data"
        self.user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> PostgresServer:
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8")
        self.restart()
        return self

    def _ready(self) -> bool:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             connect_timeout=2):
            return True

    def stop(self, mode: str = "fast") -> None:
        if self.data.exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
            except subprocess.CalledProcessError:
                pass  # already stopped

    def restart(self) -> None:
        """Start the server on its data directory (again, after ``stop``)."""
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                "-c max_connections=50")
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "pg.log"),
                  "-w", "start")
        wait_until(self._ready, timeout=30, what=f"postgres on {self.port}")

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
