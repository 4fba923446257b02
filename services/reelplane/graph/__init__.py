"""Graph: follow / unfollow, followers, following, creator tiers."""
