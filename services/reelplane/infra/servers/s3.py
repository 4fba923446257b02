"""S3-compatible object store: versitygw (Apache-2.0) over a local posix folder.

Built once with `go install` from the Go module proxy into `cache/s3/bin`, then run
as a plain process on loopback. Objects live as ordinary files under
`data/s3/root/<bucket>/<key>`; their S3 metadata (ETag, content type, user
metadata) lives in extended attributes, or in a sidecar folder when the
filesystem has no user xattrs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from reelplane.infra.harness import Server, go_install, port_open, progress

VERSITYGW_MODULE = "github.com/versity/versitygw"
VERSITYGW_VERSION = "v1.8.0"
"""Pinned release; its go.mod asks for Go 1.25, so the stock Go 1.26 builds it."""

GO_TOOLCHAIN: str | None = None
"""Set to e.g. "go1.27.3" if a future pin needs a newer Go than the installed one."""


class S3Store(Server):
    name = "s3"
    port = 17070
    start_timeout_s = 60.0
    setting = "REELPLANE_OBJECTS_URL"

    ACCESS_KEY = "reelplane"
    SECRET_KEY = "reelplane-secret"  # noqa: S105 - fixed dev credential, loopback only
    BUCKET = "reelplane"
    REGION = "us-east-1"

    # -- paths ---------------------------------------------------------------
    @property
    def binary(self) -> Path:
        return self.cache_dir / "bin" / "versitygw"

    @property
    def backend_root(self) -> Path:
        """The posix backend's top folder: one sub-folder per bucket."""
        return self.data_dir / "root"

    @property
    def sidecar_dir(self) -> Path:
        """Metadata folder, used only where the filesystem lacks user xattrs."""
        return self.data_dir / "sidecar"

    @property
    def _meta_mode_file(self) -> Path:
        # The choice is made once per data folder: switching between xattrs and a
        # sidecar later would silently drop every stored ETag and content type.
        return self.data_dir / "metadata-mode"

    @property
    def endpoint(self) -> str:
        return f"http://{self.address}"

    @property
    def url(self) -> str:
        return (
            f"s3://{self.BUCKET}?endpoint={quote(self.endpoint, safe='')}"
            f"&access_key={self.ACCESS_KEY}&secret_key={self.SECRET_KEY}"
            f"&region={self.REGION}"
        )

    # -- lifecycle -----------------------------------------------------------
    def install(self) -> None:
        go_install(
            self.name,
            f"{VERSITYGW_MODULE}/cmd/versitygw",
            VERSITYGW_VERSION,
            self.binary.parent,
            ldflags=f"-X main.Version={VERSITYGW_VERSION}",
            toolchain=GO_TOOLCHAIN,
        )

    def prepare(self) -> None:
        self.backend_root.mkdir(parents=True, exist_ok=True)
        if self._meta_mode_file.is_file():
            return
        if _xattrs_work(self.data_dir):
            mode = "xattr"
        else:
            progress(self.name, "no user xattrs on this filesystem: metadata goes to a sidecar")
            mode = "sidecar"
            self.sidecar_dir.mkdir(parents=True, exist_ok=True)
        self._meta_mode_file.write_text(mode + "\n")

    def _metadata_mode(self) -> str:
        mode = _read(self._meta_mode_file)
        if mode in ("xattr", "sidecar"):
            return mode
        return "xattr" if _xattrs_work(self.data_dir) else "sidecar"

    def command(self) -> tuple[list[str], dict[str, str]]:
        cmd = [
            str(self.binary),
            "--port",
            self.address,
            "--region",
            self.REGION,
            "--quiet",  # no line per request on stdout; errors still reach the log
            "posix",
        ]
        if self._metadata_mode() == "sidecar":
            self.sidecar_dir.mkdir(parents=True, exist_ok=True)
            cmd += ["--sidecar", str(self.sidecar_dir)]
        cmd.append(str(self.backend_root))
        env = {"ROOT_ACCESS_KEY": self.ACCESS_KEY, "ROOT_SECRET_KEY": self.SECRET_KEY}
        return cmd, env

    def client(self, *, timeout_s: float = 2.0) -> Any:
        """A plain botocore S3 client for this store (path-style, no retries)."""
        import botocore.config
        import botocore.session

        session = botocore.session.get_session()
        config = botocore.config.Config(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": "path"},
        )
        return session.create_client(
            "s3",
            region_name=self.REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id=self.ACCESS_KEY,
            aws_secret_access_key=self.SECRET_KEY,
            config=config,
        )

    def ready(self) -> bool:
        if not port_open(self.host, self.port):
            return False
        self.client().list_buckets()
        return True

    def after_ready(self) -> None:
        import botocore.exceptions

        s3 = self.client(timeout_s=5.0)
        try:
            s3.head_bucket(Bucket=self.BUCKET)
            return
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise
        try:
            s3.create_bucket(Bucket=self.BUCKET)
            progress(self.name, f"created bucket {self.BUCKET!r}")
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def _xattrs_work(folder: Path) -> bool:
    """True when files in `folder` accept user.* extended attributes."""
    fd, probe = tempfile.mkstemp(prefix=".xattr-probe-", dir=folder)
    try:
        os.setxattr(probe, "user.reelplane.probe", b"1")
        return os.getxattr(probe, "user.reelplane.probe") == b"1"
    except OSError:
        return False
    finally:
        os.close(fd)
        os.unlink(probe)
