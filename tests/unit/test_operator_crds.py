"""The CRDs: generated from the models, structural, and the examples validate."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from reelplane_operator.crds import build_crd, crd_files, main
from reelplane_operator.kinds import BY_KIND, KINDS, Kind
from reelplane_operator.models import LADDER_RUNGS_UNIQUE_RULE, NPROBE_RULE, SLOTS_RULE

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "crds" / "examples").glob("*.yaml"))


def _schema(kind: Kind) -> dict[str, Any]:
    return build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        found += _walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


def _defaulted(schema: dict[str, Any], value: Any) -> Any:
    """Apply the schema's defaults as the API server does (objects' missing fields)."""
    if isinstance(value, dict) and "properties" in schema:
        out = dict(value)
        for name, sub in schema["properties"].items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = _defaulted(sub, out[name])
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_defaulted(schema["items"], v) for v in value]
    return value


def _strict(node: dict[str, Any]) -> dict[str, Any]:
    """The schema refusing unknown fields, as `kubectl apply` (strict field validation) does."""
    out = copy.deepcopy(node)
    for _, sub in _walk(out):
        if sub.get("type") == "object" and "properties" in sub:
            sub["additionalProperties"] = False
    return out


def _validate(kind: Kind, obj: dict[str, Any]) -> None:
    schema = _schema(kind)
    jsonschema.Draft4Validator(_strict(schema)).validate(_defaulted(schema, obj))


def test_checked_in_crds_equal_what_the_models_generate() -> None:
    assert main(["--root", str(ROOT), "--check"]) == 0
    for name, text in crd_files().items():
        assert (ROOT / "crds" / name).read_text() == text
        assert (ROOT / "charts" / "reelplane-operator" / "crds" / name).read_text() == text


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_schema_is_structural(kind: Kind) -> None:
    forbidden = {"$ref", "anyOf", "oneOf", "allOf", "title", "$defs"}
    for path, node in _walk(_schema(kind)):
        assert "type" in node, f"{kind.kind}{path} has no type"
        assert not forbidden & set(node), f"{kind.kind}{path} has {forbidden & set(node)}"
        if node["type"] == "object" and "properties" in node:
            assert "additionalProperties" not in node, f"{kind.kind}{path}"
        if path.startswith(".spec") and path.count(".") == 2 and not {"[", "{"} & set(path):
            assert node.get("description"), f"{kind.kind}{path} needs a description"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_defaults_validate_against_their_own_schema(kind: Kind) -> None:
    for path, node in _walk(_schema(kind)):
        if "default" in node:
            assert jsonschema.Draft4Validator(node).is_valid(node["default"]), path


def test_names_category_and_subresources() -> None:
    crds = {k.kind: build_crd(k) for k in KINDS}
    assert {c["spec"]["names"]["shortNames"][0] for c in crds.values()} == {
        "tp",
        "fs",
        "pop",
        "rec",
    }
    for crd in crds.values():
        assert crd["spec"]["group"] == "reelplane.io"
        assert crd["spec"]["names"]["categories"] == ["reelplane"]
        version = crd["spec"]["versions"][0]
        assert version["name"] == "v1alpha1"
        assert "status" in version["subresources"]
        assert any(c["name"] == "Ready" for c in version["additionalPrinterColumns"])
    scalable = {k for k, c in crds.items() if "scale" in c["spec"]["versions"][0]["subresources"]}
    assert scalable == {"FeedShard", "EdgePoP"}


def test_cel_rules_are_declared() -> None:
    pool = _schema(BY_KIND["TranscodePool"])["properties"]["spec"]
    assert "self.minReplicas <= self.maxReplicas" in str(pool["x-kubernetes-validations"])
    shard = _schema(BY_KIND["FeedShard"])["properties"]["spec"]
    assert "self.shardIndex < self.shardCount" in str(shard["x-kubernetes-validations"])
    count_rules = shard["properties"]["shardCount"]["x-kubernetes-validations"]
    assert count_rules == [{"rule": "self == oldSelf", "message": "shardCount is immutable"}]
    rec = _schema(BY_KIND["Recommender"])["properties"]["spec"]
    assert "minReplicas" in str(rec["x-kubernetes-validations"])
    index_rules = rec["properties"]["index"]["x-kubernetes-validations"]
    assert index_rules[0]["rule"] == NPROBE_RULE["rule"]
    slot_rules = rec["properties"]["exploration"]["x-kubernetes-validations"]
    assert slot_rules[0]["rule"] == SLOTS_RULE["rule"]
    ladder = pool["properties"]["ladder"]["x-kubernetes-validations"]
    assert ladder[0]["rule"] == LADDER_RUNGS_UNIQUE_RULE  # the API server runs it (e2e)


def test_two_rungs_of_one_height_and_codec_are_refused() -> None:
    rung = {"height": 720, "codec": "h264", "videoBitrateKbps": 2000}
    ladder = [{"name": "a", **rung}, {"name": "b", **rung}]
    with pytest.raises(ValidationError, match="same height and codec"):
        BY_KIND["TranscodePool"].spec.model_validate({"ladder": ladder})
    ladder[1]["codec"] = "hevc"
    BY_KIND["TranscodePool"].spec.model_validate({"ladder": ladder})


def test_conditions_are_a_list_map_keyed_by_type() -> None:
    conditions = _schema(BY_KIND["EdgePoP"])["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) >= {"type", "status", "lastTransitionTime"}


def test_every_kind_has_an_example() -> None:
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in EXAMPLES}
    assert kinds == set(BY_KIND)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates_against_its_crd_and_model(path: Path) -> None:
    obj = yaml.safe_load(path.read_text())
    kind = BY_KIND[obj["kind"]]
    _validate(kind, obj)
    kind.spec.model_validate(obj["spec"])


@pytest.mark.parametrize(
    ("kind", "spec", "field"),
    [
        ("TranscodePool", {"minReplicas": -1}, "minReplicas"),
        ("TranscodePool", {"ladder": [{"name": "x", "height": 99, "codec": "h264"}]}, "ladder"),
        ("TranscodePool", {"gpu": {"count": 9}}, "count"),
        ("FeedShard", {"shardIndex": 0, "shardCount": 0}, "shardCount"),
        ("EdgePoP", {"region": "eu", "location": {"latitude": 91, "longitude": 0}}, "latitude"),
        ("EdgePoP", {"region": "EU West", "location": {"latitude": 1, "longitude": 0}}, "region"),
        ("Recommender", {"targetOngoingRequests": 0}, "targetOngoingRequests"),
        ("Recommender", {"importPath": "no colon"}, "importPath"),
        ("Recommender", {"index": {"type": "annoy"}}, "type"),
        ("Recommender", {"index": {"nprobe": 0}}, "nprobe"),
        ("Recommender", {"exploration": {"freshSlotRatio": 0.9}}, "freshSlotRatio"),
        ("Recommender", {"cacheTTLSeconds": -1}, "cacheTTLSeconds"),
        ("Recommender", {"modelVersion": "../etc"}, "modelVersion"),
    ],
)
def test_out_of_range_specs_are_refused_by_schema_and_model(
    kind: str, spec: dict[str, Any], field: str
) -> None:
    obj = {"apiVersion": "reelplane.io/v1alpha1", "kind": kind, "metadata": {}, "spec": spec}
    with pytest.raises(jsonschema.ValidationError):
        _validate(BY_KIND[kind], obj)
    with pytest.raises(ValidationError) as refused:
        BY_KIND[kind].spec.model_validate(spec)
    assert field in str(refused.value)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_server_defaults_equal_the_models_defaults(kind: Kind) -> None:
    """What the API server fills in is what the operator would assume."""
    required = {
        "FeedShard": {"shardIndex": 0, "shardCount": 1},
        "EdgePoP": {"region": "eu", "location": {"latitude": 0, "longitude": 0}},
    }.get(kind.kind, {})
    spec_schema = _schema(kind)["properties"]["spec"]
    server = _defaulted(spec_schema, dict(required))
    model = kind.spec.model_validate(required).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    assert server == model


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"index": {"nlist": 16, "nprobe": 32}}, "nprobe must be <= nlist"),
        (
            {"exploration": {"freshSlotRatio": 0.4, "randomSlotRatio": 0.2}},
            "freshSlotRatio + randomSlotRatio",
        ),
    ],
)
def test_recommender_cel_rules_are_mirrored_by_the_model(
    spec: dict[str, Any], message: str
) -> None:
    """The API server runs the CEL rules (e2e); the model refuses the same specs."""
    with pytest.raises(ValidationError, match=re.escape(message)):
        BY_KIND["Recommender"].spec.model_validate(spec)
    # The same fields within their ranges but inside the rule pass.
    BY_KIND["Recommender"].spec.model_validate({"index": {"nlist": 64, "nprobe": 32}})
