"""Video features, computed once when a video becomes ready.

- Caption: wordllama 0.4.0.post1's 256-d static embeddings (l2_supercat), whose
  weights ship inside the wheel. Its loader looks for the tokenizer config under
  `wordllama/tokenizer/` while the wheel ships `wordllama/tokenizers/`, then tries
  the Hugging Face Hub; `TextEncoder` copies the shipped file into a private
  cache directory and loads with downloads disabled, so no network is touched.
- Poster and stills: a documented cheap fallback instead of an image network
  (EfficientNet-Lite0 would need torch, ~5 GB, in every feature worker): per
  image a 3 x 8-bin HSV histogram (24) and an 8 x 8 grey thumbnail (64),
  averaged over the images. `decode_thumbnail` lets ffmpeg (already the
  transcoder's tool) decode and shrink any image to 32 x 32 RGB.
- Hashtags: from the caption's `#words` plus explicit ones, lower-cased; the
  video tower hashes them (`towers.tag_bucket`).

Everything but `TextEncoder.load` and `decode_thumbnail` is a pure function.
"""

from __future__ import annotations

import asyncio
import base64
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from reelplane_ml.types import IMAGE_DIM, TEXT_DIM, VideoFeatures

_HASHTAG = re.compile(r"#(\w{1,64})", re.UNICODE)
THUMB_SIDE = 32


class TextEncoder:
    """Caption -> (TEXT_DIM,) L2-normalised float32, offline. Thread-safe."""

    _shared: TextEncoder | None = None
    _shared_lock = threading.Lock()

    def __init__(self, model: Any) -> None:
        self._model = model

    @classmethod
    def load(cls) -> TextEncoder:
        """Load the weights shipped in the wordllama wheel (no download, ~1 s)."""
        import wordllama
        from wordllama import WordLlama

        package = Path(wordllama.__file__).parent
        shipped = package / "tokenizers" / "l2_supercat_tokenizer_config.json"
        if not shipped.exists():
            raise RuntimeError(f"wordllama's tokenizer config is missing: {shipped}")
        with tempfile.TemporaryDirectory(prefix="reelplane-wordllama-") as tmp:
            (Path(tmp) / "tokenizers").mkdir()
            shutil.copy(shipped, Path(tmp) / "tokenizers" / shipped.name)
            model = WordLlama.load(
                "l2_supercat", cache_dir=Path(tmp), dim=TEXT_DIM, disable_download=True
            )
        return cls(model)

    @classmethod
    def shared(cls) -> TextEncoder:
        """One encoder per process, loaded on first use."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls.load()
            return cls._shared

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """(len(texts), TEXT_DIM); a blank text embeds as zeros."""
        out = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
        idx = [i for i, t in enumerate(texts) if t.strip()]
        if idx:
            vecs = np.asarray(self._model.embed([texts[i] for i in idx], norm=True), np.float32)
            out[idx] = vecs
        return out


def hashtags_of(caption: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Lower-cased hashtags from the caption's #words and `extra`, first seen first."""
    seen: dict[str, None] = {}
    for tag in [*_HASHTAG.findall(caption), *extra]:
        t = tag.strip().lstrip("#").lower()
        if t:
            seen.setdefault(t, None)
    return tuple(seen)


def rgb_to_hsv(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """(..., 3) uint8 RGB -> (..., 3) float32 HSV, each channel in [0, 1]."""
    x = rgb.astype(np.float32) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    mx = x.max(axis=-1)
    mn = x.min(axis=-1)
    delta = mx - mn
    safe = np.where(delta > 0, delta, 1.0)
    h = np.where(
        mx == r,
        ((g - b) / safe) % 6.0,
        np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    h = np.where(delta > 0, h / 6.0, 0.0)
    s = np.where(mx > 0, delta / np.where(mx > 0, mx, 1.0), 0.0)
    return np.stack([h, s, mx], axis=-1).astype(np.float32)


def image_vector(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """(IMAGE_DIM,) for one (H, W, 3) uint8 RGB image: 3 x 8-bin HSV histograms
    (each sums to 1) and an 8 x 8 grey thumbnail centred on its mean."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    hsv = rgb_to_hsv(rgb).reshape(-1, 3)
    hist = [np.histogram(hsv[:, c], bins=8, range=(0.0, 1.0))[0] for c in range(3)]
    hist_v = np.concatenate(hist).astype(np.float32) / max(hsv.shape[0], 1)
    grey = rgb.astype(np.float32).mean(axis=2) / 255.0
    h, w = grey.shape
    ys = np.linspace(0, h, 9).astype(int)
    xs = np.linspace(0, w, 9).astype(int)
    thumb = np.array(
        [
            [grey[ys[i] : max(ys[i + 1], ys[i] + 1), xs[j] : max(xs[j + 1], xs[j] + 1)].mean()
             for j in range(8)]
            for i in range(8)
        ],
        dtype=np.float32,
    )  # fmt: skip
    thumb = thumb - thumb.mean()
    out = np.concatenate([hist_v, thumb.reshape(-1)]).astype(np.float32)
    assert out.shape == (IMAGE_DIM,)
    return out


def images_vector(images: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
    """Mean of `image_vector` over the poster and stills; zeros when none."""
    if not images:
        return np.zeros(IMAGE_DIM, dtype=np.float32)
    out: NDArray[np.float32] = np.mean([image_vector(i) for i in images], axis=0).astype(np.float32)
    return out


async def decode_thumbnail(
    data: bytes, *, ffmpeg: str = "ffmpeg", side: int = THUMB_SIDE, timeout_s: float = 10.0
) -> NDArray[np.uint8]:
    """Decode any image ffmpeg reads (JPEG poster, PNG, WebP) to (side, side, 3) RGB."""
    proc = await asyncio.create_subprocess_exec(
        ffmpeg, "-v", "error", "-i", "pipe:0", "-frames:v", "1",
        "-vf", f"scale={side}:{side}", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(data), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0 or len(out) != side * side * 3:
        raise ValueError(f"ffmpeg could not decode the image: {err.decode(errors='replace')[:200]}")
    return np.frombuffer(out, dtype=np.uint8).reshape(side, side, 3).copy()


def video_features(
    *,
    video_id: str,
    creator_id: str,
    caption: str,
    encoder: TextEncoder,
    images: Sequence[NDArray[np.uint8]] = (),
    hashtags: Iterable[str] = (),
    duration_ms: int = 0,
    has_audio: bool = True,
    created_at_ms: int = 0,
) -> VideoFeatures:
    """Everything the recommender knows of a video, from its metadata and pixels."""
    tags = hashtags_of(caption, hashtags)
    return VideoFeatures(
        video_id=video_id,
        creator_id=creator_id,
        caption_vec=encoder.embed([caption])[0],
        image_vec=images_vector(images),
        hashtags=tags,
        duration_ms=duration_ms,
        has_audio=has_audio,
        created_at_ms=created_at_ms,
    )


class VideoFeaturesRecord(BaseModel):
    """The stored form of VideoFeatures (JSON; vectors as base64 float16)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    video_id: str
    creator_id: str
    caption_b64: str
    image_b64: str
    hashtags: list[str] = []
    duration_ms: int = 0
    has_audio: bool = True
    created_at_ms: int = 0


def _vec_b64(v: NDArray[np.float32]) -> str:
    return base64.b64encode(np.asarray(v, dtype="<f2").tobytes()).decode()


def _b64_vec(s: str, dim: int) -> NDArray[np.float32]:
    data = base64.b64decode(s, validate=True)
    if len(data) != 2 * dim:
        raise ValueError(f"expected a {dim}-d float16 vector, got {len(data)} bytes")
    return np.frombuffer(data, dtype="<f2").astype(np.float32)


def features_to_json(f: VideoFeatures) -> bytes:
    return (
        VideoFeaturesRecord(
            video_id=f.video_id,
            creator_id=f.creator_id,
            caption_b64=_vec_b64(f.caption_vec),
            image_b64=_vec_b64(f.image_vec),
            hashtags=list(f.hashtags),
            duration_ms=f.duration_ms,
            has_audio=f.has_audio,
            created_at_ms=f.created_at_ms,
        )
        .model_dump_json()
        .encode()
    )


def features_from_json(data: bytes | str) -> VideoFeatures:
    """Parse `features_to_json` output (pydantic ValidationError/ValueError when bad)."""
    r = VideoFeaturesRecord.model_validate_json(data)
    return VideoFeatures(
        video_id=r.video_id,
        creator_id=r.creator_id,
        caption_vec=_b64_vec(r.caption_b64, TEXT_DIM),
        image_vec=_b64_vec(r.image_b64, IMAGE_DIM),
        hashtags=tuple(r.hashtags),
        duration_ms=r.duration_ms,
        has_audio=r.has_audio,
        created_at_ms=r.created_at_ms,
    )
