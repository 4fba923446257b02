"""The embedded bus's file: one owning process, retention on open, and a
record written before `publish` returns (the restart contract itself is in
tests/contract/test_bus_contract.py)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import pytest

from reelplane.adapters.bus_memory import MemoryBus
from reelplane.backends import MEMORY_BUS_FILE, make_bus
from tests.conftest import embedded_settings

pytestmark = pytest.mark.embedded


async def read_all(bus: MemoryBus, topic: str, group: str) -> list[tuple[int, bytes]]:
    consumer = bus.consumer([topic], group)
    await consumer.start()
    try:
        records = await consumer.poll(max_records=1000, timeout_s=0.2)
    finally:
        await consumer.stop()
    return [(r.offset, r.value) for r in records]


async def test_dev_settings_keep_the_bus_in_the_data_folder(tmp_path: Path) -> None:
    bus = make_bus(embedded_settings(tmp_path))
    assert isinstance(bus, MemoryBus)
    await bus.publish("t", "k", b"v")
    assert bus.durable
    await bus.close()
    assert (tmp_path / MEMORY_BUS_FILE).is_file()


async def test_a_second_owner_of_the_file_keeps_its_events_in_memory_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bus.sqlite3"
    owner = MemoryBus(path=path)
    await owner.publish("t", "k", b"owner's")
    other = MemoryBus(path=path)
    with caplog.at_level(logging.WARNING, logger="reelplane.adapters.bus_memory"):
        await other.publish("t", "k", b"other's")
    assert not other.durable
    assert "in use by another process" in caplog.text
    await other.close()
    await owner.close()
    reopened = MemoryBus(path=path)
    assert await read_all(reopened, "t", "g") == [(0, b"owner's")]
    await reopened.close()


async def test_expired_records_are_dropped_on_open_and_offsets_go_on(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    bus = MemoryBus(default_partitions=1, path=path)
    for i in range(3):
        await bus.publish("t", "k", f"old-{i}".encode())
    await bus.close()
    await asyncio.sleep(0.3)
    bus = MemoryBus(default_partitions=1, path=path, retention_s=0.2)
    # The last record stays: it holds where the log ends.
    assert await read_all(bus, "t", "g") == [(2, b"old-2")]
    delivery = await bus.publish("t", "k", b"new")
    assert delivery.offset == 3
    await bus.close()


PUBLISH_THEN_HANG = """
import asyncio, sys
from pathlib import Path
from reelplane.adapters.bus_memory import MemoryBus

async def main():
    bus = MemoryBus(default_partitions=1, path=Path(sys.argv[1]))
    for i in range(5):
        await bus.publish("uploads", "k", f"event-{i}".encode())
    print("published", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_published_record_survives_the_process_being_killed(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PUBLISH_THEN_HANG, str(path), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.strip() == b"published"
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    bus = MemoryBus(default_partitions=1, path=path)
    assert await read_all(bus, "uploads", "transcode") == [
        (i, f"event-{i}".encode()) for i in range(5)
    ]
    await bus.close()
