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


def test_the_apps_deployment_names_are_the_ones_the_operator_configures() -> None:
    serve = pytest.importorskip("ray.serve", reason="the 'serve' extra")
    assert serve is not None
    from reelplane_ml import serve as app_module

    (app,) = serve_config(RecommenderSpec())["applications"]
    rendered = {d["name"] for d in app["deployments"]}
    deployed = {
        app_module.Recommender.name,
        app_module.Retriever.name,
        app_module.Ranker.name,
    }
    assert rendered == deployed
