"""Video features: caption embeddings offline, the image fallback, hashtags, storage form."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from reelplane_ml.features import (
    TextEncoder,
    decode_thumbnail,
    features_from_json,
    features_to_json,
    hashtags_of,
    image_vector,
    images_vector,
    rgb_to_hsv,
    video_features,
)
from reelplane_ml.types import IMAGE_DIM, TEXT_DIM
from tests.upload_support import red_jpeg


@pytest.mark.unit
def test_hashtags_come_from_caption_and_extra_lowercased_once() -> None:
    assert hashtags_of("Pasta night #Cooking #pasta", ["cooking", "#Italy"]) == (
        "cooking",
        "pasta",
        "italy",
    )
    assert hashtags_of("no tags here") == ()


@pytest.mark.unit
def test_hsv_of_primary_colours() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 0]]], dtype=np.uint8)
    hsv = rgb_to_hsv(rgb)[0]
    assert np.allclose(hsv[:, 0], [0.0, 1 / 3, 2 / 3, 0.0], atol=1e-6)
    assert np.allclose(hsv[:, 1], [1, 1, 1, 0])
    assert np.allclose(hsv[:, 2], [1, 1, 1, 0])


@pytest.mark.unit
def test_image_vector_separates_colours_and_layouts() -> None:
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 220
    blue = np.zeros((32, 32, 3), np.uint8)
    blue[..., 2] = 220
    split = np.zeros((32, 32, 3), np.uint8)
    split[:16] = 255
    v_red, v_blue, v_split = image_vector(red), image_vector(blue), image_vector(split)
    assert v_red.shape == (IMAGE_DIM,)
    assert np.allclose(v_red[:8].sum(), 1.0)  # each histogram sums to one
    assert not np.allclose(v_red[:8], v_blue[:8])  # hue differs
    assert np.allclose(v_red[24:], 0.0)  # a flat image has a flat thumbnail
    assert v_split[24:32].min() > 0 > v_split[-8:].max()  # bright top, dark bottom
    assert np.allclose(images_vector([red, blue]), (v_red + v_blue) / 2)
    assert np.allclose(images_vector([]), 0.0)


@pytest.mark.unit
def test_image_vector_rejects_a_non_rgb_array() -> None:
    with pytest.raises(ValueError, match="RGB"):
        image_vector(np.zeros((8, 8), np.uint8))


@pytest.mark.unit
def test_features_round_trip_through_their_stored_form() -> None:
    rng = np.random.default_rng(0)
    caption = rng.standard_normal(TEXT_DIM).astype(np.float32)
    caption /= np.linalg.norm(caption)
    image = rng.random(IMAGE_DIM).astype(np.float32)
    from reelplane_ml.types import VideoFeatures

    f = VideoFeatures("v1", "c1", caption, image, ("cats",), 31_000, False, 123)
    back = features_from_json(features_to_json(f))
    assert (back.video_id, back.creator_id, back.hashtags) == ("v1", "c1", ("cats",))
    assert (back.duration_ms, back.has_audio, back.created_at_ms) == (31_000, False, 123)
    assert np.allclose(back.caption_vec, caption, atol=1e-3)  # float16 storage
    assert np.allclose(back.image_vec, image, atol=1e-3)
    with pytest.raises(ValueError, match="256-d"):
        features_from_json(features_to_json(f).replace(b'"caption_b64":"', b'"caption_b64":"AAAA'))


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder.shared()


@pytest.mark.embedded
def test_captions_embed_by_meaning(encoder: TextEncoder) -> None:
    v = encoder.embed(
        ["a cat falls off the sofa", "kitten tumbles from the couch", "carbonara recipe", "  "]
    )
    assert v.shape == (4, TEXT_DIM) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[:3], axis=1), 1.0, atol=1e-5)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.2
    assert np.allclose(v[3], 0.0)  # a blank caption


@pytest.mark.embedded
def test_video_features_from_metadata_and_pixels(encoder: TextEncoder) -> None:
    img = np.full((16, 16, 3), 128, np.uint8)
    f = video_features(
        video_id="v1", creator_id="c1", caption="Sunday #baking bread", encoder=encoder,
        images=[img], hashtags=["sourdough"], duration_ms=15_000, created_at_ms=5,
    )  # fmt: skip
    assert f.hashtags == ("baking", "sourdough")
    assert f.caption_vec.shape == (TEXT_DIM,) and f.image_vec.shape == (IMAGE_DIM,)


@pytest.mark.embedded
def test_text_model_loads_with_the_network_cut_off() -> None:
    """The weights ship in the wheel: load and embed inside a network namespace
    with no interfaces (`unshare -n`), where any download attempt fails."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not installed")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.decode()[:100]}")
    script = textwrap.dedent(
        """
        import socket
        try:
            socket.create_connection(("huggingface.co", 443), timeout=2)
            raise SystemExit("the network is reachable: the test proves nothing")
        except OSError:
            pass
        from reelplane_ml.features import TextEncoder
        v = TextEncoder.load().embed(["offline caption"])
        assert v.shape == (1, 256) and abs(float((v * v).sum()) - 1.0) < 1e-4
        print("ok")
        """
    )
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", script], capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode().strip() == "ok"


@pytest.mark.embedded
async def test_ffmpeg_decodes_a_poster_to_a_thumbnail() -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    rgb = await decode_thumbnail(red_jpeg())
    assert rgb.shape == (32, 32, 3)
    assert rgb[..., 0].mean() > 200 and rgb[..., 2].mean() < 50
    with pytest.raises(ValueError, match="decode"):
        await decode_thumbnail(b"not an image")
