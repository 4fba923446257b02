"""What the runtime images (docker/*.Dockerfile) must hold for the code they run.
No container engine here builds them, so these read the Dockerfiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelplane_operator.render import recommender

pytestmark = pytest.mark.unit

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def test_the_ml_serving_image_sets_the_ray_environment_the_operator_sets() -> None:
    """The image run by hand (no operator) serves as the operator's pods do."""
    text = (DOCKER / "ml-serving.Dockerfile").read_text()
    missing = [f"{k}={v}" for k, v in recommender.RAY_ENV.items() if f"{k}={v}" not in text]
    assert not missing, f"ml-serving.Dockerfile lacks {missing}"


@pytest.mark.parametrize(
    ("image", "check"),
    [
        # the upload service validates every upload with ffprobe
        ("services", "ffprobe -hide_banner -version"),
        # the recommender's `videos` consumer decodes posters (reelplane_ml.catalogue);
        # Ray's base image has no ffmpeg
        ("ml-serving", "ffmpeg -hide_banner -decoders | grep -q mjpeg"),
        # the transcode worker, with NVENC
        ("gpu-workers", "ffmpeg -hide_banner -encoders | grep -q h264_nvenc"),
    ],
)
def test_images_whose_code_runs_ffmpeg_install_it_and_check_it_at_build(
    image: str, check: str
) -> None:
    text = (DOCKER / f"{image}.Dockerfile").read_text()
    final_stage = text.rsplit("\nFROM ", 1)[-1]
    assert "apt-get install -y --no-install-recommends ffmpeg" in final_stage, image
    assert check in final_stage, image
