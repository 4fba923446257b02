"""MariaDB from Debian's package as the MySQL-protocol relational store."""

from __future__ import annotations

import shutil
import subprocess

from reelplane.infra.harness import HarnessError, Server, apt_install, port_open, run_step

DATABASE = "reelplane"
USER = "reelplane"
PASSWORD = "reelplane"  # noqa: S105 - loopback-only dev server


class MariaDB(Server):
    name = "mariadb"
    port = 13306
    start_timeout_s = 60.0
    setting = "REELPLANE_DATABASE_URL"

    @property
    def url(self) -> str:
        return f"mysql+asyncmy://{USER}:{PASSWORD}@{self.address}/{DATABASE}?charset=utf8mb4"

    @property
    def _socket(self) -> str:
        return str(self.run_dir / "mariadb.sock")

    def install(self) -> None:
        apt_install(
            self.name,
            ["mariadb-server", "mariadb-client"],
            binaries=["mariadbd", "mariadb-install-db", "mariadb"],
        )

    def prepare(self) -> None:
        cnf = self.data_dir / "my.cnf"
        datadir = self.data_dir / "db"
        cnf.write_text(
            "\n".join(
                [
                    "[mariadbd]",
                    f"datadir={datadir}",
                    f"socket={self._socket}",
                    f"pid-file={self.run_dir / 'mariadbd.pid'}",
                    f"bind-address={self.host}",
                    f"port={self.port}",
                    "user=root",
                    "character-set-server=utf8mb4",
                    "collation-server=utf8mb4_unicode_ci",
                    "innodb_buffer_pool_size=256M",
                    "innodb_log_file_size=64M",
                    "innodb_flush_log_at_trx_commit=1",
                    "transaction-isolation=READ-COMMITTED",
                    "skip-name-resolve",
                    "max_connections=500",
                    "",
                ]
            )
        )
        if not (datadir / "mysql").is_dir():
            install_db = shutil.which("mariadb-install-db") or "mariadb-install-db"
            run_step(
                self.name,
                "initialise data folder",
                [
                    install_db,
                    f"--defaults-file={cnf}",
                    "--auth-root-authentication-method=socket",
                    "--skip-test-db",
                ],
            )

    def command(self) -> tuple[list[str], dict[str, str]]:
        return ["mariadbd", f"--defaults-file={self.data_dir / 'my.cnf'}"], {}

    def _sql(self, statement: str, timeout_s: float = 5.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["mariadb", f"--socket={self._socket}", "-uroot", "--batch", "-e", statement],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def ready(self) -> bool:
        if not port_open(self.host, self.port):
            return False
        # Ready for us means the application account works over TCP.
        probe = subprocess.run(
            [
                "mariadb",
                f"--host={self.host}",
                f"--port={self.port}",
                f"--user={USER}",
                f"--password={PASSWORD}",
                DATABASE,
                "-e",
                "SELECT 1",
            ],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if probe.returncode == 0:
            return True
        # Server up but account missing: create it now (first start).
        if self._sql("SELECT 1").returncode == 0:
            self._create_account()
            return True
        return False

    def _create_account(self) -> None:
        for db in (DATABASE, f"{DATABASE}_test"):
            self._sql(f"CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4")
        self._sql(
            f"CREATE USER IF NOT EXISTS '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';"
            f"CREATE USER IF NOT EXISTS '{USER}'@'localhost' IDENTIFIED BY '{PASSWORD}';"
            f"GRANT ALL ON *.* TO '{USER}'@'127.0.0.1';"
            f"GRANT ALL ON *.* TO '{USER}'@'localhost';"
            "FLUSH PRIVILEGES;"
        )

    # -- test support ------------------------------------------------------------
    def _app_sql(self, statement: str) -> subprocess.CompletedProcess[str]:
        """Run SQL over TCP as the application account, which also works when the
        server was started by another checkout (its socket is elsewhere)."""
        return subprocess.run(
            [
                "mariadb",
                f"--host={self.host}",
                f"--port={self.port}",
                f"--user={USER}",
                f"--password={PASSWORD}",
                "-e",
                statement,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def create_database(self, name: str) -> None:
        """Create an empty database (for an isolated test session)."""
        result = self._app_sql(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
        if result.returncode != 0:
            raise HarnessError(f"mariadb: cannot create database {name}: {result.stderr.strip()}")

    def drop_database(self, name: str) -> None:
        self._app_sql(f"DROP DATABASE IF EXISTS `{name}`")
