"""The operator's rendered user_config is what the Serve replicas parse."""

from __future__ import annotations

import pytest

from reelplane_ml.serving import ServeUserConfig
from reelplane_operator.models import RecommenderSpec
from reelplane_operator.render.recommender import serve_config, user_config

pytestmark = pytest.mark.unit


def test_the_rendered_user_config_parses_into_the_replicas_settings() -> None:
    spec = RecommenderSpec.model_validate(
        {
            "modelVersion": "v3",
            "index": {"type": "ivf", "nlist": 512, "nprobe": 48},
            "exploration": {"freshSlotRatio": 0.2, "randomSlotRatio": 0.02},
            "cacheTTLSeconds": 120,
        }
    )
    parsed = ServeUserConfig.model_validate(user_config(spec))
    assert parsed.model_version == "v3"
    assert (parsed.index.type, parsed.index.nlist, parsed.index.nprobe) == ("ivf", 512, 48)
    assert parsed.exploration.fresh_slot_ratio == 0.2
    assert parsed.cache_ttl_s == 120
    (app,) = serve_config(spec)["applications"]
    assert app["import_path"] == "reelplane_ml.serve:app"


@pytest.mark.parametrize("topology", ["split", "fused"])
def test_the_apps_deployment_names_are_the_ones_the_operator_configures(topology: str) -> None:
    serve = pytest.importorskip("ray.serve", reason="the 'serve' extra")
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve._private.build_app import build_app

    from reelplane_ml import serve as app_module

    (app,) = serve_config(RecommenderSpec(topology=topology))["applications"]  # type: ignore[arg-type]
    module, _, attr = app["import_path"].partition(":")
    assert module == app_module.__name__
    # What Serve does with the rendered import_path and args.
    built = call_user_app_builder_with_args_if_necessary(getattr(app_module, attr), app["args"])
    deployed = {d.name for d in build_app(built, name="recommender").deployments}
    rendered = {d["name"] for d in app["deployments"]}
    assert rendered == deployed
    assert serve is not None
