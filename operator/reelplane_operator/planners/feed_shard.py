"""FeedShard: a feed Deployment and its Service."""

from __future__ import annotations

from reelplane_operator.meta import Owner
from reelplane_operator.models import FeedShardSpec
from reelplane_operator.planners.plan import Plan, Render, serving_plan
from reelplane_operator.render import feed


def plan(owner: Owner, spec: FeedShardSpec, render: Render) -> Plan:
    children = render(owner, None, lambda: feed.render_feed_shard(owner, spec))
    return serving_plan(owner, children, feed.APP, "feed-shard", feed.feed_endpoint(owner))
