"""An upload as its `uploads` row says it is, and reading that row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Row

from reelplane.errors import NotFound
from reelplane.ports.objects import Part
from reelplane.ports.relational import Database
from reelplane.schema import uploads


@dataclass(frozen=True)
class Upload:
    """One `uploads` row. Offsets and sizes in bytes."""

    id: str
    owner_id: str
    state: str
    length: int
    offset: int
    object_key: str
    multipart_id: str | None
    parts: tuple[Part, ...]
    pending_key: str | None
    pending_size: int
    metadata: dict[str, str]
    expires_at: datetime
    created_at: datetime
    concat: str | None = None  # tus concatenation: None, "partial" or "final"
    concat_of: tuple[str, ...] = ()  # a final upload's partial uploads, in order

    @classmethod
    def from_row(cls, row: Row[Any]) -> Upload:
        return cls(
            id=row.id,
            owner_id=row.owner_id,
            state=row.state,
            length=int(row.length),
            offset=int(row.offset),
            object_key=row.object_key,
            multipart_id=row.multipart_id,
            parts=tuple(Part(int(p["number"]), str(p["etag"]), int(p["size"])) for p in row.parts),
            pending_key=row.pending_key,
            pending_size=int(row.pending_size),
            metadata=dict(row.upload_metadata or {}),
            expires_at=row.expires_at,
            created_at=row.created_at,
            concat=row.concat,
            concat_of=tuple(row.concat_of or ()),
        )


def parts_json(parts: list[Part] | tuple[Part, ...]) -> list[dict[str, Any]]:
    """The `uploads.parts` column's form of stored parts."""
    return [{"number": p.number, "etag": p.etag, "size": p.size} for p in parts]


async def load_upload(database: Database, upload_id: str) -> Upload:
    """The upload's row as it is now; NotFound when there is none."""
    async with database.connect() as conn:
        row = (await conn.execute(select(uploads).where(uploads.c.id == upload_id))).first()
    if row is None:
        raise NotFound(f"upload {upload_id} does not exist")
    return Upload.from_row(row)
