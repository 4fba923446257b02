"""Demo content for a newcomer's first minutes (`reelplane dev --demo`): a few
accounts, and generated clips (ffmpeg test patterns in varied colours, with
captions and hashtags, portrait and landscape) uploaded through the real tus
upload path of the running server, so the feed has something to scroll.

Idempotent: an account that exists is logged in to, and a clip whose caption
its creator already uploaded is not uploaded again.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from reelplane.media.ffprobe import ensure_ffmpeg
from reelplane.webclient.build import checkout_root

DEMO_PASSWORD = "reelplane-demo"  # noqa: S105 (demo accounts only; printed in the banner)
CHUNK_BYTES = 5 * 1024 * 1024
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


@dataclass(frozen=True)
class Clip:
    """One generated clip: who posts it, what it looks like, what it says."""

    handle: str
    pattern: str  # an ffmpeg lavfi source
    hue: int  # degrees: varies the colours
    width: int
    height: int
    tone_hz: int
    caption: str
    label: str


CLIPS = (
    Clip("maya.moves", "testsrc2", 0, 360, 640, 440, "Morning warm-up #dance #daily", "warm-up"),
    Clip(
        "kofi_cooks", "smptebars", 0, 640, 360, 330, "Colour bars, but tasty #food #retro", "bars"
    ),
    Clip("lena.lens", "mandelbrot", 0, 360, 640, 520, "Zooming in forever #math #art", "zoom"),
    Clip(
        "maya.moves", "testsrc2", 120, 360, 640, 600, "Green screen day @kofi_cooks #dance", "green"
    ),
    Clip("kofi_cooks", "rgbtestsrc", 0, 360, 640, 260, "Three colours, one pan #food", "rgb"),
    Clip("lena.lens", "testsrc2", 240, 640, 360, 700, "Landscape mode #travel #art", "wide"),
    Clip(
        "maya.moves", "life", 0, 360, 640, 380, "Game of life, choreographed #dance #math", "life"
    ),
    Clip("kofi_cooks", "testsrc2", 60, 360, 640, 480, "Golden hour in the kitchen #food", "gold"),
)
HANDLES = tuple(dict.fromkeys(c.handle for c in CLIPS))
#: Who follows whom among the demo accounts.
FOLLOWS = (("lena.lens", "maya.moves"), ("lena.lens", "kofi_cooks"), ("kofi_cooks", "maya.moves"))


def _source(clip: Clip, seconds: int) -> str:
    size = f"{clip.width}x{clip.height}"
    if clip.pattern == "life":
        base = f"life=size={size}:rate=15:mold=10:ratio=0.1:death_color=#102040:life_color=#60e0ff"
    elif clip.pattern == "mandelbrot":
        base = f"mandelbrot=size={size}:rate=25"
    else:
        base = f"{clip.pattern}=size={size}:rate=30"
    chain = [base, f"hue=h={clip.hue}", "format=yuv420p"]
    if FONT.is_file():
        chain.append(
            f"drawtext=fontfile={FONT}:text='{clip.label}':fontsize=44:fontcolor=white"
            ":box=1:boxcolor=black@0.5:x=(w-tw)/2:y=h*0.2"
        )
    return ",".join(chain) + f",trim=duration={seconds}"


def generate_clip(clip: Clip, folder: Path, seconds: int = 8) -> Path:
    """The clip as an H.264/AAC MP4 under folder (made once, then reused)."""
    out = folder / f"{clip.handle}-{clip.label}.mp4"
    if out.is_file() and out.stat().st_size > 0:
        return out
    ensure_ffmpeg()  # the demo makes its clips before the first upload would install it
    ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
    folder.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial.mp4")
    subprocess.run(
        [
            ffmpeg, "-v", "error", "-y",
            "-f", "lavfi", "-i", _source(clip, seconds),
            "-f", "lavfi", "-i", f"sine=frequency={clip.tone_hz}:duration={seconds}",
            "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "96k", "-shortest", "-movflags", "+faststart",
            str(partial),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    partial.replace(out)
    return out


def _metadata(values: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def tus_upload(client: httpx.Client, token: str, path: Path, caption: str) -> str:
    """Upload one file with tus 1.0 (creation, then PATCHes); returns the video id."""
    size = path.stat().st_size
    auth = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    created = client.post(
        "/v1/uploads",
        headers={
            **auth,
            "Upload-Length": str(size),
            "Upload-Metadata": _metadata(
                {"filename": path.name, "filetype": "video/mp4", "caption": caption}
            ),
        },
    )
    created.raise_for_status()
    location = created.headers["Location"]
    offset = 0
    with path.open("rb") as f:
        while offset < size:
            chunk = f.read(CHUNK_BYTES)
            r = client.patch(
                location,
                content=chunk,
                headers={
                    **auth,
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                },
            )
            r.raise_for_status()
            offset = int(r.headers["Upload-Offset"])
    return location.rsplit("/", 1)[-1]


def _session(client: httpx.Client, handle: str) -> dict[str, str]:
    body = {"handle": handle, "password": DEMO_PASSWORD}
    r = client.post("/v1/accounts", json=body)
    if r.status_code == 409:  # made by an earlier run
        r = client.post("/v1/sessions", json=body)
    r.raise_for_status()
    data: dict[str, str] = r.json()
    return data


def wait_until_up(client: httpx.Client, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the server did not come up")


def seed_demo(
    base_url: str,
    clips_dir: Path | None = None,
    *,
    say: Callable[[str], None] = print,
    wait_ready_s: float = 300,
) -> list[str]:
    """Create the demo accounts, follows and uploads on the server at
    base_url; wait until the videos are ready. Returns the new video ids."""
    folder = clips_dir or checkout_root() / ".cache" / "demo" / "clips"
    with httpx.Client(base_url=base_url, timeout=60) as client:
        wait_until_up(client)
        sessions = {h: _session(client, h) for h in HANDLES}
        for follower, followee in FOLLOWS:
            client.put(
                f"/v1/users/{followee}/follow",
                headers={"Authorization": f"Bearer {sessions[follower]['token']}"},
            ).raise_for_status()
        made: dict[str, str] = {}  # video id -> its owner's token
        for clip in CLIPS:
            token = sessions[clip.handle]["token"]
            mine = client.get(f"/v1/users/{clip.handle}/videos", params={"limit": 50}).json()
            if any(i["caption"] == clip.caption for i in mine["items"]):
                continue
            made[tus_upload(client, token, generate_clip(clip, folder), clip.caption)] = token
            say(f"demo: uploaded @{clip.handle}: {clip.caption}")
        deadline = time.monotonic() + wait_ready_s
        pending = dict(made)
        while pending and time.monotonic() < deadline:
            for video_id, token in list(pending.items()):
                r = client.get(
                    f"/v1/videos/{video_id}", headers={"Authorization": f"Bearer {token}"}
                )
                if r.status_code != 200 or r.json()["state"] in ("ready", "failed"):
                    del pending[video_id]
            time.sleep(1)
        return list(made)
