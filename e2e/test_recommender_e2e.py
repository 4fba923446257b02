"""The recommender as a user meets it: `reelplane dev`, a simulated crowd acting
through the real HTTP API (For You pages, watch events, likes), a new creator
with no followers whose good video reaches other people's For You through
exploration, and a user whose next page turns to cooking seconds after they
complete three cooking videos. Then the same on the real servers (Kafka, Redis,
MariaDB, Cassandra, S3: `./reelplane infra env`).

Each crowd member has a hidden topic (never sent to the server): they complete
and like what is on their topic and swipe the rest away after 0.3 s, as the
simulator's users do. Videos are uploaded for real through tus; they are one
small generated clip (the later uploads are deduplicated onto its asset, so
only the first is transcoded) under different captions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from tests.helpers import free_port

from reelplane_ml.sim.topics import TOPICS

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parents[1]
PASSWORD = "correct horse battery"
WORDS = dict(TOPICS)
#: Catalogue of the scenario: videos per creator topic (cooking needs enough
#: videos left after three are completed).
CATALOGUE = {"cooking": 10, "football": 5, "travel": 5, "guitar": 5}
CROWD_PER_TOPIC = 3
CLIP_MS = 2000


def real_env() -> dict[str, str]:
    """The real servers' backend URLs (`./reelplane infra env`), a fresh MariaDB
    database so the scenario starts from an empty catalogue."""
    out = subprocess.run(
        [str(ROOT / "reelplane"), "infra", "env"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    env: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value.strip("'")
    db = f"reelplane_rec_{uuid.uuid4().hex[:8]}"
    from reelplane.infra.registry import make_harness
    from reelplane.infra.servers.mariadb import MariaDB

    harness = make_harness()
    harness.up(["mariadb"])
    server = harness.servers["mariadb"]
    assert isinstance(server, MariaDB)
    server.create_database(db)
    env["REELPLANE_DATABASE_URL"] = env["REELPLANE_DATABASE_URL"].replace("/reelplane?", f"/{db}?")
    # only this run's events: the topics may hold other runs' backlog
    env["REELPLANE_BUS_OFFSET_RESET"] = "latest"
    return env


@pytest.fixture(params=["embedded", "real"])
def dev(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """`reelplane dev` as the README starts it, on a free port, in a folder of
    its own: on the embedded defaults, or on the real servers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELPLANE_")}
    if request.param == "real":
        env |= real_env()
    # a whole crowd behind one IP: the per-IP sign-up and request limits would
    # (rightly) stop it
    env["REELPLANE_RATE_LIMITS_ENABLED"] = "false"
    # kept after the run (tmp folders rotate): what the server said
    log = ROOT / ".cache" / "e2e" / f"recommender-dev-{request.param}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(VENV / "bin" / "reelplane"), "dev", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            assert proc.poll() is None, log.read_text()[-5000:]
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"dev not ready:\n{log.read_text()[-5000:]}"
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@dataclass
class Person:
    handle: str
    token: str
    topic: str = ""
    cursor: str | None = None
    completed: set[str] = field(default_factory=set)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Platform:
    """The HTTP API, as a client app calls it."""

    def __init__(self, base: str, workdir: Path) -> None:
        self.api = f"{base}/v1"
        self.http = httpx.Client(timeout=30)
        self.run = uuid.uuid4().hex[:6]
        self.clip = workdir / "clip.mp4"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
             f"testsrc2=size=192x108:rate=15:duration={CLIP_MS / 1000}",
             "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(self.clip)],
            check=True, timeout=120,
        )  # fmt: skip
        self.topic_of: dict[str, str] = {}

    def sign_up(self, name: str, topic: str = "") -> Person:
        handle = f"{name}_{self.run}"
        r = self.http.post(f"{self.api}/accounts", json={"handle": handle, "password": PASSWORD})
        assert r.status_code in (200, 201), r.text
        return Person(handle, r.json()["token"], topic)

    def upload(self, creator: Person, topic: str, k: int) -> str:
        from tusclient import client

        words = WORDS[topic]
        caption = f"{words[k % 10]} {words[(k + 3) % 10]} {words[(k + 7) % 10]} #{topic}"
        tus = client.TusClient(f"{self.api}/uploads", headers=creator.auth)
        up = tus.uploader(str(self.clip), chunk_size=5 * 1024 * 1024,
                          metadata={"filename": "clip.mp4", "caption": caption,
                                    "hashtags": topic})  # fmt: skip
        up.upload()
        video = str(up.url).rsplit("/", 1)[-1]
        self.topic_of[video] = topic
        return video

    def wait_ready(self, creator: Person, videos: list[str], timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        for video in videos:
            while True:
                state = self.http.get(f"{self.api}/videos/{video}", headers=creator.auth).json()
                assert state["state"] != "failed", state
                if state["state"] == "ready":
                    break
                assert time.monotonic() < deadline, state
                time.sleep(0.5)

    def for_you(self, who: Person, *, first: bool = False, limit: int = 10) -> list[str]:
        params: dict[str, str | int] = {"limit": limit}
        if who.cursor and not first:
            params["cursor"] = who.cursor
        r = self.http.get(f"{self.api}/feed/foryou", params=params, headers=who.auth)
        assert r.status_code == 200, r.text
        body = r.json()
        who.cursor = body.get("next_cursor")
        return [item["video_id"] for item in body["items"]]

    def watch(self, who: Person, video: str, *, complete: bool) -> None:
        watched = CLIP_MS if complete else 300
        r = self.http.post(f"{self.api}/videos/{video}/watch", json={"watched_ms": watched},
                           headers=who.auth)  # fmt: skip
        assert r.status_code in (200, 201, 202, 204), r.text
        if complete:
            who.completed.add(video)

    def like(self, who: Person, video: str) -> None:
        r = self.http.put(f"{self.api}/videos/{video}/like", headers=who.auth)
        assert r.status_code in (200, 201, 204), r.text

    def crowd_round(self, crowd: list[Person]) -> dict[str, set[str]]:
        """Every member gets their next For You page and watches it; returns who
        was shown each video."""
        shown: dict[str, set[str]] = {}
        for person in crowd:
            page = self.for_you(person)
            if not page:
                page = self.for_you(person, first=True)
            for video in page:
                shown.setdefault(video, set()).add(person.handle)
                on_topic = self.topic_of.get(video) == person.topic
                self.watch(person, video, complete=on_topic)
                if on_topic:
                    self.like(person, video)
        return shown


@pytest.mark.timeout(900)  # uploads, a transcode and ~40 crowd pages on a busy 2-core box
def test_a_new_creators_good_video_reaches_the_crowd_and_cooking_follows_three_completions(
    dev: str, tmp_path: Path
) -> None:
    p = Platform(dev, tmp_path)
    uploads: dict[str, list[str]] = {}
    creators: dict[str, Person] = {}
    for topic, n in CATALOGUE.items():
        creators[topic] = p.sign_up(f"chef{topic[:4]}" if topic == "cooking" else topic[:8])
        uploads[topic] = [p.upload(creators[topic], topic, k) for k in range(n)]
    for topic, videos in uploads.items():
        p.wait_ready(creators[topic], videos)

    crowd = [p.sign_up(f"{t[:6]}{i}", t) for t in CATALOGUE for i in range(CROWD_PER_TOPIC)]
    for _ in range(2):
        p.crowd_round(crowd)

    # A brand-new creator, no followers, uploads a good travel video: travel
    # lovers complete and like it as soon as they see it.
    newbie = p.sign_up("newbie")
    fresh = p.upload(newbie, "travel", 11)
    p.wait_ready(newbie, [fresh])
    reached: set[str] = set()
    for _ in range(8):
        reached |= p.crowd_round(crowd).get(fresh, set())
        if len(reached) >= 4:
            break
    assert newbie.handle not in reached
    assert len(reached) >= 4, f"the new video reached only {sorted(reached)}"

    # Interest shift: a guitar fan completes three cooking videos.
    fan = p.sign_up("fan", "guitar")
    p.crowd_round([fan])
    cooking = [v for v in uploads["cooking"] if v not in fan.completed][:3]
    for video in cooking:
        p.watch(fan, video, complete=True)
    started = time.monotonic()
    share = 0.0
    while time.monotonic() - started < 10:
        page = p.for_you(fan, first=True)
        share = sum(p.topic_of.get(v) == "cooking" for v in page) / max(len(page), 1)
        if share >= 0.3:
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    print(f"cooking share {share:.0%} after {elapsed:.1f} s; new video reached {len(reached)}")
    assert share >= 0.3, f"next page only {share:.0%} cooking after {elapsed:.1f} s"
    assert elapsed <= 5.0
