"""Redis from Debian's package, run with its own config and data folder."""

from __future__ import annotations

import socket

from reelplane.infra.harness import Server, apt_install


class Redis(Server):
    name = "redis"
    port = 16379
    start_timeout_s = 30.0
    setting = "REELPLANE_CACHE_URL"

    @property
    def url(self) -> str:
        return f"redis://{self.address}/0"

    def install(self) -> None:
        apt_install(self.name, ["redis-server"], binaries=["redis-server"])

    def prepare(self) -> None:
        conf = self.data_dir / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    f"bind {self.host}",
                    f"port {self.port}",
                    f"dir {self.data_dir}",
                    "daemonize no",
                    "save ''",
                    "appendonly no",
                    "protected-mode yes",
                    "maxmemory 1gb",
                    "",
                ]
            )
        )

    def command(self) -> tuple[list[str], dict[str, str]]:
        return ["redis-server", str(self.data_dir / "redis.conf")], {}

    def ready(self) -> bool:
        with socket.create_connection((self.host, self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
