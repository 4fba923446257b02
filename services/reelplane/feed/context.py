"""The feed's settings, with the graph's and engagement's it reads: what its
routes, consumers and page builders are given (`FeedContext`)."""

from __future__ import annotations

from dataclasses import dataclass

from reelplane.engagement.settings import EngagementSettings
from reelplane.feed.settings import FeedSettings
from reelplane.feed.shards import in_shard
from reelplane.feed.timelines import TimelinePolicy
from reelplane.graph.settings import GraphSettings
from reelplane.settings import load_section


@dataclass(frozen=True)
class FeedContext:
    """The settings the feed's consumers use."""

    feed: FeedSettings
    graph: GraphSettings
    engagement: EngagementSettings

    @classmethod
    def load(cls) -> FeedContext:
        return cls(
            load_section(FeedSettings),
            load_section(GraphSettings),
            load_section(EngagementSettings),
        )

    def serves(self, user_id: str) -> bool:
        """Whether this feed's shard serves user_id (always, unsharded)."""
        return in_shard(user_id, self.feed.feed_shard_index, self.feed.feed_shard_count)

    def group(self, base: str) -> str:
        """A consumer group of this shard: each shard reads every event for its own users."""
        if self.feed.feed_shard_count <= 1:
            return base
        return f"{base}-shard-{self.feed.feed_shard_index}-of-{self.feed.feed_shard_count}"

    @property
    def policy(self) -> TimelinePolicy:
        return TimelinePolicy(
            cap=self.feed.feed_timeline_cap,
            ttl_s=self.feed.feed_timeline_ttl_s,
            trim_every=self.feed.feed_trim_every,
        )
