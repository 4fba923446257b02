"""The wide-row port's contract, run on SQLite and on Cassandra."""

from __future__ import annotations

import asyncio

from reelplane.ports.widerow import Clustering, WideRow, WideRowStore, WideTable

TIMELINE = WideTable("contract_timeline")
#: Long enough that the row is surely still there when read back on a busy
#: 2-core machine (1 s was not: the first read came back empty).
EXPIRING = WideTable("contract_expiring_3s", default_ttl_s=3)


def rows(partition: str, stamps: list[tuple[int, str]]) -> list[WideRow]:
    return [WideRow(partition, ts, item, f"{ts}:{item}".encode()) for ts, item in stamps]


async def test_range_is_newest_first_in_clustering_order(widerow: WideRowStore, ns: str) -> None:
    await widerow.ensure_tables([TIMELINE])
    await widerow.ensure_tables([TIMELINE])  # idempotent
    await widerow.put(TIMELINE, rows(ns, [(10, "a"), (30, "c"), (20, "b"), (30, "d")]))
    await widerow.put(TIMELINE, rows(f"{ns}-other", [(99, "z")]))
    got = await widerow.range(TIMELINE, ns)
    assert [(r.ts, r.item) for r in got] == [(30, "d"), (30, "c"), (20, "b"), (10, "a")]
    assert got[0].value == b"30:d"
    oldest = await widerow.range(TIMELINE, ns, newest_first=False, limit=2)
    assert [(r.ts, r.item) for r in oldest] == [(10, "a"), (20, "b")]


async def test_cursor_pages_cover_the_partition_once(widerow: WideRowStore, ns: str) -> None:
    await widerow.ensure_tables([TIMELINE])
    stamps = [(1000 + i // 3, f"v{i:03d}") for i in range(50)]
    await widerow.put(TIMELINE, rows(ns, stamps))
    seen: list[tuple[int, str]] = []
    cursor: Clustering | None = None
    while True:
        page = await widerow.range(TIMELINE, ns, before=cursor, limit=7)
        if not page:
            break
        seen += [(r.ts, r.item) for r in page]
        cursor = page[-1].clustering
    assert seen == sorted(stamps, reverse=True)


async def test_bounds_are_exclusive_on_both_sides(widerow: WideRowStore, ns: str) -> None:
    await widerow.ensure_tables([TIMELINE])
    await widerow.put(TIMELINE, rows(ns, [(i, "x") for i in range(10)]))
    got = await widerow.range(
        TIMELINE, ns, after=Clustering(2, "x"), before=Clustering(6, "x"), newest_first=False
    )
    assert [r.ts for r in got] == [3, 4, 5]


async def test_upsert_overwrites_and_delete_removes(widerow: WideRowStore, ns: str) -> None:
    await widerow.ensure_tables([TIMELINE])
    await widerow.put(TIMELINE, rows(ns, [(1, "a"), (2, "b")]))
    await widerow.put(TIMELINE, [WideRow(ns, 1, "a", b"new")])
    got = await widerow.range(TIMELINE, ns)
    assert [(r.ts, r.value) for r in got] == [(2, b"2:b"), (1, b"new")]
    await widerow.delete(TIMELINE, ns, Clustering(2, "b"))
    assert [r.ts for r in await widerow.range(TIMELINE, ns)] == [1]
    await widerow.delete(TIMELINE, ns)
    assert await widerow.range(TIMELINE, ns) == []


async def test_rows_expire_after_their_ttl(widerow: WideRowStore, ns: str) -> None:
    await widerow.ensure_tables([EXPIRING, TIMELINE])
    await widerow.put(EXPIRING, rows(ns, [(1, "gone")]))
    await widerow.put(TIMELINE, rows(ns, [(1, "short")]), ttl_s=3)
    await widerow.put(TIMELINE, rows(ns, [(2, "kept")]))
    assert len(await widerow.range(EXPIRING, ns)) == 1
    assert len(await widerow.range(TIMELINE, ns)) == 2
    await asyncio.sleep(3.2)
    assert await widerow.range(EXPIRING, ns) == []
    assert [r.item for r in await widerow.range(TIMELINE, ns)] == ["kept"]


async def test_large_batch_over_many_partitions(widerow: WideRowStore, ns: str) -> None:
    await widerow.ensure_tables([TIMELINE])
    batch = [WideRow(f"{ns}-{i % 20}", i, f"v{i}", b"x") for i in range(1000)]
    await widerow.put(TIMELINE, batch)
    got = await widerow.range(TIMELINE, f"{ns}-7", limit=1000)
    assert len(got) == 50
    assert [r.ts for r in got] == sorted((r.ts for r in got), reverse=True)


async def test_trim_keeps_the_newest_rows(widerow: WideRowStore, ns: str) -> None:
    await widerow.ensure_tables([TIMELINE])
    await widerow.put(TIMELINE, rows(ns, [(i, f"v{i}") for i in range(1, 21)]))
    await widerow.put(TIMELINE, rows(f"{ns}-other", [(1, "x")]))
    await widerow.trim(TIMELINE, ns, 30)  # fewer rows than the cap: untouched
    assert len(await widerow.range(TIMELINE, ns, limit=100)) == 20
    await widerow.trim(TIMELINE, ns, 5)
    assert [r.ts for r in await widerow.range(TIMELINE, ns, limit=100)] == [20, 19, 18, 17, 16]
    assert len(await widerow.range(TIMELINE, f"{ns}-other")) == 1
    # Rows sharing the boundary's ts stay.
    await widerow.put(TIMELINE, rows(ns, [(16, "tie")]))
    await widerow.trim(TIMELINE, ns, 5)
    assert [r.item for r in await widerow.range(TIMELINE, ns, limit=100)][-2:] == ["v16", "tie"]
