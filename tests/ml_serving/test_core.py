"""RecommenderCore: the contract the serving half builds on."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from reelplane_ml.artifact import ModelArtifact, default_artifact
from reelplane_ml.bloom import SeenFilter, bloom_offsets
from reelplane_ml.candidates import (
    CandidateList,
    decode_candidates,
    encode_candidates,
    source_masks,
)
from reelplane_ml.config import ExplorationConfig, RecommenderConfig
from reelplane_ml.core import RecommenderCore
from reelplane_ml.retrieval import IndexParams
from reelplane_ml.stats import LiveStats
from reelplane_ml.towers import content_towers
from reelplane_ml.types import (
    IMAGE_DIM,
    TEXT_DIM,
    FriendActivity,
    RecommendRequest,
    UserState,
    VideoFeatures,
    Watch,
)

NOW = 10 * 86_400_000
TOPICS = 8


def topic_vec(topic: int, rng: np.random.Generator, noise: float = 0.3) -> np.ndarray:
    """A caption vector near one of TOPICS fixed directions."""
    base = np.random.default_rng(1000 + topic).standard_normal(TEXT_DIM)
    v = base / np.linalg.norm(base) + rng.standard_normal(TEXT_DIM) * noise / np.sqrt(TEXT_DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def video(i: int, topic: int, rng: np.random.Generator, *, creator: str | None = None,
          created_at_ms: int = NOW - 5 * 86_400_000) -> VideoFeatures:  # fmt: skip
    return VideoFeatures(
        video_id=f"v{i}",
        creator_id=creator or f"c{i % 97}",
        caption_vec=topic_vec(topic, rng),
        image_vec=np.zeros(IMAGE_DIM, np.float32),
        hashtags=(f"t{topic}",),
        duration_ms=30_000,
        created_at_ms=created_at_ms,
    )


@pytest.fixture
def core() -> RecommenderCore:
    rng = np.random.default_rng(0)
    c = RecommenderCore()
    c.upsert_videos([video(i, i % TOPICS, rng) for i in range(2000)])
    return c


def watched(*ids: str, completion: float = 1.0) -> tuple[Watch, ...]:
    return tuple(Watch(v, int(30_000 * completion), 30_000, NOW - k) for k, v in enumerate(ids))


def request(limit: int = 10, seed: int = 1, **kw: object) -> RecommendRequest:
    return RecommendRequest("u1", now_ms=NOW, limit=limit, seed=seed, **kw)  # type: ignore[arg-type]


def topic_of(video_id: str) -> int:
    return int(video_id[1:]) % TOPICS


@pytest.mark.unit
def test_ranking_just_retrieved_candidates_equals_ranking_them_as_a_plain_list(
    core: RecommenderCore,
) -> None:
    """Ranking reuses retrieval's rows and user vector, but only for the very
    request and user state they were made for: a watch since (a new state)
    gets its own user vector."""
    stats = LiveStats()
    req = request(limit=20)
    before = UserState("u1", watches=watched("v3", "v11", "v19", "v27"))
    (got,) = core.retrieve_batch([(req, before)], stats)
    plain = list(got)
    assert core.rank(req, before, stats, got) == core.rank(req, before, stats, plain)
    after = UserState("u1", watches=watched("v5", "v13", "v21", "v29", "v37") + before.watches)
    page = core.rank(req, after, stats, got)
    assert page == core.rank(req, after, stats, plain)
    assert page != core.rank(req, before, stats, plain)


@pytest.mark.unit
def test_candidates_sent_to_another_replica_are_ranked_by_its_own_catalogue_rows() -> None:
    """The split topology pickles retrieved candidates to a Ranker replica, whose
    catalogue rows may differ from the Retriever's: there they arrive without rows."""
    import pickle

    rng = np.random.default_rng(0)
    videos = [video(i, i % TOPICS, rng) for i in range(2000)]
    retriever, ranker = RecommenderCore(), RecommenderCore()
    retriever.upsert_videos(videos)
    ranker.upsert_videos(videos[::-1])  # the same videos, other rows
    stats, req = LiveStats(), request(limit=20)
    user = UserState("u1", watches=watched("v3", "v11", "v19", "v27"))
    (got,) = retriever.retrieve_batch([(req, user)], stats)
    sent = pickle.loads(pickle.dumps(got))  # noqa: S301  # our own bytes, as Ray pickles them
    assert type(sent) is CandidateList and sent == list(got)
    assert sent.masks.tolist() == got.masks.tolist()
    page = ranker.rank(req, user, stats, sent)
    assert page == ranker.rank(req, user, stats, list(got))
    assert page == retriever.rank(req, user, stats, list(got))


@pytest.mark.unit
def test_a_video_removed_between_retrieval_and_ranking_is_not_shown_even_when_its_row_is_reused(
    core: RecommenderCore,
) -> None:
    """Ranking takes just-retrieved candidates by catalogue row; a removal frees
    a row, and the next upsert takes it: the ranked page must know."""
    user = UserState("u1", watches=watched("v3", "v11", "v19", "v27"))
    stats = LiveStats()
    (candidates,) = core.retrieve_batch([(request(limit=20), user)], stats)
    gone = [c.video_id for c in candidates[:40]]
    for video_id in gone:
        assert core.remove_video(video_id)
    rng = np.random.default_rng(5)
    # the new videos take the freed rows (topic 3, what the user completes)
    core.upsert_videos([video(5000 + i, 3, rng) for i in range(40)])
    page = core.rank(request(limit=20), user, stats, candidates, checked=True)
    assert page
    ids = {r.video_id for r in page}
    assert not ids & set(gone)
    assert all(r.video_id in core for r in page)
    assert not any(r.video_id.startswith("v50") for r in page)  # never retrieved


@pytest.mark.unit
def test_recommendations_follow_what_the_user_completed(core: RecommenderCore) -> None:
    user = UserState("u1", watches=watched("v3", "v11", "v19", "v27"))  # topic 3
    recs = core.recommend(request(limit=20), user, LiveStats())
    ranked = [r for r in recs if r.source not in ("fresh", "random")]
    assert len(recs) == 20
    assert sum(topic_of(r.video_id) == 3 for r in ranked) >= 0.8 * len(ranked)
    assert all(r.reasons and r.reasons[0].startswith("sources=") for r in recs)


def bitset_of(videos: frozenset[str], bits: int = 1 << 16, hashes: int = 7) -> SeenFilter:
    """A seen filter as the signals consumer writes it (Redis SETBIT order)."""
    data = bytearray(bits // 8)
    for video in videos:
        for o in bloom_offsets(video, bits=bits, hashes=hashes):
            data[o // 8] |= 0x80 >> (o % 8)
    return SeenFilter(bytes(data), bits, hashes)


@pytest.mark.unit
@pytest.mark.parametrize("kind", ["set", "bitset"])
def test_never_recommends_watched_seen_excluded_or_removed(
    core: RecommenderCore, kind: str
) -> None:
    seen = frozenset(f"v{i}" for i in range(3, 2000, 8)[:100])
    user = UserState(
        "u1", watches=watched("v3", "v11"), seen=seen if kind == "set" else bitset_of(seen)
    )
    first = core.recommend(request(limit=30), user, LiveStats())
    gone = first[0].video_id
    assert core.remove_video(gone)
    assert not core.remove_video(gone)
    excluded = frozenset(r.video_id for r in first[1:5])
    again = core.recommend(request(limit=200, exclude=excluded), user, LiveStats())
    ids = {r.video_id for r in again}
    assert not ids & (seen | excluded | {"v3", "v11", gone})
    assert len(ids) == len(again)  # no duplicates


@pytest.mark.unit
def test_a_new_video_is_retrievable_as_soon_as_it_is_upserted(core: RecommenderCore) -> None:
    rng = np.random.default_rng(5)
    user = UserState("u1", watches=watched("v3", "v11", "v19"))
    new = video(99_999, 3, rng, creator="newbie", created_at_ms=NOW - 1000)
    core.upsert_video(new)
    cands = core.retrieve(request(limit=10), user, LiveStats())
    assert any(c.video_id == "v99999" and "ann" in c.sources for c in cands)
    assert "v99999" in core and core.video_vector("v99999") is not None


@pytest.mark.unit
def test_not_interested_hides_the_creator_then_discounts(core: RecommenderCore) -> None:
    user = UserState("u1", watches=watched("v3", "v11", "v19"))
    creators = {core._cat.creators[core._row_of[r.video_id]]
                for r in core.recommend(request(limit=20), user, LiveStats())}  # fmt: skip
    muted = next(iter(creators))
    hidden = UserState("u1", watches=user.watches, not_interested={muted: NOW - 1000})
    recs = core.recommend(request(limit=100), hidden, LiveStats())
    assert all(core._cat.creators[core._row_of[r.video_id]] != muted for r in recs)
    later = UserState("u1", watches=user.watches, not_interested={muted: NOW - 20 * 86_400_000})
    recs = core.recommend(request(limit=2000), later, LiveStats())
    fatigued = [r for r in recs if any("fatigue x0.20" in why for why in r.reasons)]
    assert fatigued  # back, at a fifth of its score


@pytest.mark.unit
def test_one_video_per_creator_within_the_window(core: RecommenderCore) -> None:
    rng = np.random.default_rng(7)
    core.upsert_videos([video(50_000 + i, 3, rng, creator="prolific") for i in range(40)])
    user = UserState("u1", watches=watched("v3", "v11", "v19", "v27"))
    recs = core.recommend(request(limit=30), user, LiveStats())
    creators = [core._cat.creators[core._row_of[r.video_id]] for r in recs]
    for i in range(len(creators)):
        window = creators[i : i + 5]
        assert len(window) == len(set(window)), creators


@pytest.mark.unit
def test_fresh_slots_go_to_new_videos_and_random_slots_are_labelled() -> None:
    rng = np.random.default_rng(3)
    cfg = RecommenderConfig(exploration=ExplorationConfig(fresh_slot_ratio=0.2,
                                                          random_slot_ratio=0.1))  # fmt: skip
    core = RecommenderCore(config=cfg)
    old = NOW - 30 * 86_400_000
    core.upsert_videos([video(i, i % TOPICS, rng, created_at_ms=old) for i in range(1000)])
    core.upsert_videos([video(5000 + i, i % TOPICS, rng, creator=f"new{i}",
                              created_at_ms=NOW - 60_000) for i in range(30)])  # fmt: skip
    user = UserState("u1", watches=watched("v3", "v11"))
    sources: list[str] = []
    for seed in range(20):
        recs = core.recommend(request(limit=10, seed=seed), user, LiveStats())
        sources += [r.source for r in recs]
        for r in recs:
            if r.source == "fresh":
                assert int(r.video_id[1:]) >= 5000
                assert any(w.startswith("explore tier=0") for w in r.reasons)
            if r.source == "random":
                assert "uniform random slot" in r.reasons
    assert 0.1 <= sources.count("fresh") / len(sources) <= 0.3
    assert sources.count("random") >= 3


def with_new_cohort(core: RecommenderCore, *, seed: int) -> RecommenderCore:
    """`core` holding 300 older videos and v5000-v5029, uploaded a minute ago by
    30 new creators."""
    rng = np.random.default_rng(seed)
    core.upsert_videos([video(i, i % TOPICS, rng) for i in range(300)])
    core.upsert_videos([video(5000 + i, i % TOPICS, rng, creator=f"new{i}",
                              created_at_ms=NOW - 60_000) for i in range(30)])  # fmt: skip
    return core


@pytest.mark.unit
def test_a_removed_new_video_leaves_the_fresh_slots_and_the_rest_of_its_cohort_stays() -> None:
    core = with_new_cohort(
        RecommenderCore(
            config=RecommenderConfig(exploration=ExplorationConfig(fresh_slot_ratio=0.3))
        ),
        seed=6,
    )
    user = UserState("u1", watches=watched("v3", "v11"))
    gone = {f"v{5000 + i}" for i in range(0, 30, 2)}
    for v in gone:
        assert core.remove_video(v)
    fresh: set[str] = set()
    for seed in range(20):
        page = core.recommend(request(limit=10, seed=seed), user, LiveStats())
        assert not {r.video_id for r in page} & gone
        fresh |= {r.video_id for r in page if r.source == "fresh"}
    assert len(fresh) >= 8 and all(int(v[1:]) >= 5000 for v in fresh)


@pytest.mark.unit
def test_a_batch_across_a_seconds_turn_judges_the_fresh_pool_once_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Retrieval, then ranking, go through a batch's requests in order: requests
    at second S, S+1, S, S+1 judge the pool once for S and once for S+1, not at
    every turn; a request two seconds older than the last judgement judges again."""
    from reelplane_ml import explore

    core = with_new_cohort(RecommenderCore(), seed=4)
    judged: list[int] = []
    real = explore.tier_decisions

    def counting(*args: object, **kw: object) -> explore.TierDecisions:
        judged.append(1)
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(explore, "tier_decisions", counting)
    stats = LiveStats()
    at = [NOW + 999, NOW + 1000, NOW + 999, NOW + 1001]
    users = [UserState(f"u{i}") for i in range(len(at))]
    reqs = [RecommendRequest(u.user_id, now_ms=t, limit=10, seed=i)
            for i, (u, t) in enumerate(zip(users, at, strict=True))]  # fmt: skip
    pages = core.recommend_batch(list(zip(reqs, users, strict=True)), stats)
    assert all(any(r.source == "fresh" for r in page) for page in pages)
    assert len(judged) == 2
    core.recommend(RecommendRequest("u9", now_ms=NOW - 1000, limit=10, seed=9), users[0], stats)
    assert len(judged) == 3


@pytest.mark.unit
def test_exploration_holds_unpromoted_new_videos_out_of_ranked_slots_and_boosts_promoted() -> None:
    """Once exploration judges new videos, one it has not promoted reaches users
    only through exploration slots or its creator's followers; a promoted one is
    boosted in the ranked slots."""
    rng = np.random.default_rng(5)
    core = RecommenderCore()
    old = NOW - 30 * 86_400_000
    core.upsert_videos([video(i, i % TOPICS, rng, created_at_ms=old) for i in range(600)])
    # twelve judged new videos of the user's topic: ten average, one good, one poor
    new = [video(5000 + i, 3, rng, creator=f"n{i}", created_at_ms=NOW - 600_000)
           for i in range(12)]  # fmt: skip
    core.upsert_videos(new)
    stats = LiveStats()
    shares = [0.3] * 10 + [0.7, 0.05]
    for v, share in zip(new, shares, strict=True):
        for k in range(80):
            stats.record(v.video_id, NOW - 60_000 + k, explored=True, watched_share=share)
    good, poor, average = new[10].video_id, new[11].video_id, new[0].video_id
    user = UserState("u1", watches=watched("v3", "v11"), followed_creators=frozenset({"n1"}))
    ranked: list[tuple[str, tuple[str, ...]]] = []
    for seed in range(30):
        recs = core.recommend(request(limit=20, seed=seed), user, stats)
        ranked += [(r.video_id, r.reasons) for r in recs if r.source not in ("fresh", "random")]
    shown = {v for v, _ in ranked}
    assert poor not in shown and average not in shown
    assert "v5001" in shown  # from a followed creator
    assert good in shown
    assert all("promoted by exploration x1.50" in why for v, why in ranked if v == good)


@pytest.mark.unit
def test_the_fresh_pool_is_the_newest_videos_whatever_order_they_arrive_in() -> None:
    """A replica loads its catalogue by last update, not by creation: the fresh
    pool still holds the newest videos, and ages the others out."""
    rng = np.random.default_rng(4)
    cfg = RecommenderConfig(
        exploration=ExplorationConfig(fresh_slot_ratio=0.3, fresh_window_s=3600, pool_scan=100)
    )
    core = RecommenderCore(config=cfg)
    core.upsert_videos([video(i, i % TOPICS, rng, created_at_ms=NOW - 30 * 86_400_000)
                        for i in range(500)])  # fmt: skip
    # The newest first (their features updated earlier), then 150 older uploads
    # still inside the window when they arrive, but not 20 minutes later.
    core.upsert_videos([video(5000 + i, i % TOPICS, rng, creator=f"new{i}",
                              created_at_ms=NOW - 60_000) for i in range(30)])  # fmt: skip
    core.upsert_videos([video(6000 + i, i % TOPICS, rng, creator=f"mid{i}",
                              created_at_ms=NOW - 50 * 60_000) for i in range(150)])  # fmt: skip
    core.upsert_videos([video(5000, 0, rng, creator="new0", created_at_ms=NOW - 60_000)])
    later = NOW + 20 * 60_000
    fresh: list[str] = []
    for topic in range(TOPICS):  # users of every topic: each gets its own new videos
        req = RecommendRequest(f"u{topic}", now_ms=later, limit=10, seed=topic)
        user = UserState(f"u{topic}", watches=watched(f"v{topic}", f"v{topic + TOPICS}"))
        recs = core.recommend(req, user, LiveStats())
        fresh += [r.video_id for r in recs if r.source == "fresh"]
    assert all(5000 <= int(v[1:]) < 5030 for v in fresh)
    assert len(set(fresh)) >= TOPICS  # the whole new cohort is judged, not the one re-sent


@pytest.mark.unit
def test_with_more_promoted_videos_than_it_scores_a_request_takes_the_newest() -> None:
    """`pool_sample` bounds the promoted videos scored per request: those are
    the newest (a just-promoted upload competes; days-old ones make room)."""
    rng = np.random.default_rng(5)
    cfg = RecommenderConfig(exploration=ExplorationConfig(pool_sample=10))
    core = RecommenderCore(config=cfg)
    core.upsert_videos([video(i, i % TOPICS, rng, created_at_ms=NOW - 30 * 86_400_000)
                        for i in range(300)])  # fmt: skip
    older = [video(5000 + i, i % TOPICS, rng, creator=f"o{i}", created_at_ms=NOW - 40 * 3_600_000)
             for i in range(30)]  # fmt: skip
    poor = [video(6000 + i, i % TOPICS, rng, creator=f"p{i}", created_at_ms=NOW - 20 * 3_600_000)
            for i in range(60)]  # fmt: skip
    newer = [video(7000 + i, i % TOPICS, rng, creator=f"n{i}", created_at_ms=NOW - 2 * 3_600_000)
             for i in range(30)]  # fmt: skip
    core.upsert_videos(older + poor + newer)
    stats = LiveStats()
    for group, completes in ((older, 140), (poor, 20), (newer, 140)):
        for v in group:
            for k in range(150):
                share = 1.0 if k < completes else 0.1
                stats.record(v.video_id, NOW - 60_000 + k, completed=k < completes,
                             explored=True, watched_share=share)  # fmt: skip
    user = UserState("u1", watches=watched("v3", "v11"))
    cands = core.retrieve_batch([(request(seed=2), user)], stats)[0]
    fresh = {c.video_id for c in cands if "fresh" in c.sources}
    assert len(fresh) == 10
    assert fresh <= {v.video_id for v in newer[-10:]}


@pytest.mark.unit
def test_other_sources_followed_friends_trending(core: RecommenderCore) -> None:
    rng = np.random.default_rng(4)
    core.upsert_video(video(70_000, 5, rng, creator="fav", created_at_ms=NOW - 3_600_000))
    stats = LiveStats()
    for k in range(50):
        stats.record("v1234", NOW - k * 1000, completed=True, liked=True)
    user = UserState(
        "u1",
        watches=watched("v3", "v11"),
        followed_creators=frozenset({"fav"}),
        friend_activity=(FriendActivity("v777", "u2", "liked", NOW - 5000),),
    )
    cands = {c.video_id: c for c in core.retrieve(request(), user, stats)}
    assert "following" in cands["v70000"].sources
    assert "friends" in cands["v777"].sources
    assert "trending" in cands["v1234"].sources
    ranked = core.rank(request(limit=2000), user, stats, list(cands.values()))
    why = {r.video_id: " ".join(r.reasons) for r in ranked}
    assert "friend u2 liked" in why["v777"]
    assert "trending x" in why["v1234"]


@pytest.mark.unit
def test_candidates_survive_their_cache_form_and_rank_rechecks_them(core: RecommenderCore) -> None:
    user = UserState("u1", watches=watched("v3", "v11"))
    cands = core.retrieve(request(), user, LiveStats())
    back = decode_candidates(encode_candidates(cands))
    assert back == cands and back is not None
    assert back.masks.tolist() == source_masks(list(cands)).tolist()
    core.remove_video(back[0].video_id)
    later = UserState("u1", watches=watched("v3", "v11"), seen=frozenset({back[1].video_id}))
    ids = {r.video_id for r in core.rank(request(limit=500), later, LiveStats(), back)}
    assert back[0].video_id not in ids and back[1].video_id not in ids


@pytest.mark.unit
def test_batch_equals_one_at_a_time(core: RecommenderCore) -> None:
    users = [UserState(f"u{i}", watches=watched(f"v{i}", f"v{i + 8}")) for i in range(6)]
    reqs = [RecommendRequest(u.user_id, now_ms=NOW, limit=10, seed=i) for i, u in enumerate(users)]
    batch = core.recommend_batch(list(zip(reqs, users, strict=True)), LiveStats())
    single = [core.recommend(r, u, LiveStats()) for r, u in zip(reqs, users, strict=True)]
    assert [[r.video_id for r in page] for page in batch] == [
        [r.video_id for r in page] for page in single
    ]


@pytest.mark.unit
def test_swap_serves_the_new_version_without_failing_requests(core: RecommenderCore) -> None:
    user = UserState("u1", watches=watched("v3", "v11"))
    errors: list[BaseException] = []
    pages = [0]
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                if core.recommend(request(), user, LiveStats()):
                    pages[0] += 1
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    rng = np.random.default_rng(9)
    new = ModelArtifact("v2", content_towers(seed=1), default_artifact().ranker,
                        IndexParams(kind="ivf"))  # fmt: skip
    core.swap_artifact(new)
    core.upsert_video(video(88_888, 3, rng))  # a writer after the swap
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert pages[0] > 0
    assert core.version == "v2" and core.index_kind == "ivf"
    assert len(core) == 2001
    assert core.recommend(request(), user, LiveStats())


@pytest.mark.unit
def test_upserts_and_removals_during_a_rebuild_are_kept(core: RecommenderCore) -> None:
    rng = np.random.default_rng(11)
    done = threading.Event()

    def writer() -> None:
        for i in range(200):
            core.upsert_video(video(90_000 + i, 3, rng))
            core.remove_video(f"v{i}")
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    for _ in range(3):
        core.rebuild_index()
    t.join()
    core.rebuild_index()  # a quiet rebuild must agree with the incremental state
    ids, vecs = core.vectors()
    assert len(ids) == 2000 and "v0" not in ids and "v90199" in ids
    _, found = core._search(core._model, vecs[:50], 1)
    assert [core._cat.ids[int(r)] for r in found[:, 0]] == ids[:50]


@pytest.mark.unit
def test_three_completions_of_a_new_topic_show_on_the_next_page(core: RecommenderCore) -> None:
    old = tuple(
        Watch(f"v{1 + 8 * k}", 30_000 if k % 2 else 20_000, 30_000, NOW - 100_000 - k)
        for k in range(40)
    )  # a long history of topic 1, half of it completed
    new = watched("v5", "v13", "v21")  # then three completions of topic 5
    before = core.recommend(request(limit=10), UserState("u1", watches=old), LiveStats())
    after = core.recommend(request(limit=10), UserState("u1", watches=new + old), LiveStats())
    assert sum(topic_of(r.video_id) == 5 for r in before) <= 1
    assert sum(topic_of(r.video_id) == 5 for r in after) >= 3
    assert any("recent-intent slot" in r.reasons for r in after)
