"""tus concatenation with raw HTTP requests: partial uploads joined by a final
upload into one video, and the refusals. Embedded and real backends."""

from __future__ import annotations

import httpx

from reelplane.settings import Settings
from reelplane.upload.tus import encode_metadata
from tests.ingest.conftest import Media
from tests.upload_support import (
    MIB,
    Platform,
    object_keys,
    raw_create,
    raw_patch,
    running_platform,
    sha256_of,
    video_row,
)

TUS = {"Tus-Resumable": "1.0.0"}


async def _partial(client: httpx.AsyncClient, platform: Platform, data: bytes) -> str:
    """A partial upload of `data`, sent whole with creation-with-upload."""
    response = await client.post(
        platform.tus_endpoint,
        content=data,
        headers={
            **platform.auth,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Concat": "partial",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["upload-offset"] == str(len(data))
    return str(response.headers["location"])


async def _final(
    client: httpx.AsyncClient, platform: Platform, urls: list[str], **headers: str
) -> httpx.Response:
    return await client.post(
        platform.tus_endpoint,
        headers={**platform.auth, **TUS, "Upload-Concat": "final;" + " ".join(urls), **headers},
    )


def _problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["tus-resumable"] == "1.0.0"


async def test_partial_uploads_joined_by_a_final_upload_make_one_video(
    platform_settings: Settings, media: Media
) -> None:
    data = media.big.read_bytes()
    # Three partials, none on the 5 MiB part grid; the middle one comes in two PATCHes.
    cuts = [0, 3 * MIB + 17, 9 * MIB + 5, len(data)]
    async with (
        running_platform(platform_settings) as platform,
        httpx.AsyncClient(timeout=120) as client,
    ):
        options = await client.options(platform.tus_endpoint)
        assert "concatenation" in options.headers["tus-extension"].split(",")

        first = await _partial(client, platform, data[cuts[0] : cuts[1]])
        middle = data[cuts[1] : cuts[2]]
        created = await raw_create(client, platform, len(middle), **{"Upload-Concat": "partial"})
        second = created.headers["location"]
        half = len(middle) // 2
        assert (await raw_patch(client, platform, second, 0, middle[:half])).status_code == 204
        assert (await raw_patch(client, platform, second, half, middle[half:])).status_code == 204
        third = await _partial(client, platform, data[cuts[2] : cuts[3]])

        head = await client.head(platform.base_url + second, headers={**platform.auth, **TUS})
        assert head.headers["upload-concat"] == "partial"
        assert head.headers["upload-offset"] == str(len(middle))
        # A partial upload is bytes only: no video was made of it, finished or not.
        for url in (first, second, third):
            assert await video_row(platform.backends, url.rsplit("/", 1)[-1]) is None

        # Full URLs and paths both name partial uploads.
        final = await _final(
            client,
            platform,
            [platform.base_url + first, second, third],
            **{"Upload-Metadata": encode_metadata({"caption": "joined #Concat"})},
        )
        assert final.status_code == 201, final.text
        final_url = final.headers["location"]
        video_id = final_url.rsplit("/", 1)[-1]

        head = await client.head(platform.base_url + final_url, headers={**platform.auth, **TUS})
        assert head.status_code == 200
        assert head.headers["upload-concat"] == f"final;{first} {second} {third}"
        assert head.headers["upload-offset"] == head.headers["upload-length"] == str(len(data))

        row = await video_row(platform.backends, video_id)
        assert row.state in ("uploaded", "transcoding", "ready")
        assert row.sha256 == sha256_of(media.big)
        assert row.hashtags == ["concat"]
        assert await platform.backends.objects.get(f"uploads/{video_id}/source") == data

        # The partials were used up: their objects are gone and they are 410 now.
        for url in (first, second, third):
            upload_id = url.rsplit("/", 1)[-1]
            assert await object_keys(platform.backends, f"uploads/{upload_id}/") == []
            gone = await client.head(platform.base_url + url, headers={**platform.auth, **TUS})
            assert gone.status_code == 410

        # A final upload takes no PATCH (403, as the extension says).
        forbidden = await raw_patch(client, platform, final_url, len(data), b"x")
        _problem(forbidden, 403)


async def test_final_uploads_refuse_unknown_unfinished_and_plain_uploads(
    platform_settings: Settings, media: Media
) -> None:
    data = media.small.read_bytes()
    async with (
        running_platform(platform_settings) as platform,
        httpx.AsyncClient(timeout=60) as client,
    ):
        done = await _partial(client, platform, data[:1000])
        unfinished = (
            await raw_create(client, platform, len(data) - 1000, **{"Upload-Concat": "partial"})
        ).headers["location"]
        started = await raw_patch(client, platform, unfinished, 0, data[1000:2000])
        assert started.status_code == 204
        plain = (await raw_create(client, platform, len(data))).headers["location"]

        # An upload that does not exist, or is another user's: 400.
        _problem(await _final(client, platform, [done, "/v1/uploads/" + "0" * 32]), 400)
        owner_token = platform.token
        _, platform.token = await platform.new_user()
        _problem(await _final(client, platform, [done]), 400)
        platform.token = owner_token

        # A partial upload still missing bytes: 409, naming what it has.
        unfinished_final = await _final(client, platform, [done, unfinished])
        _problem(unfinished_final, 409)
        assert "1000 of its" in unfinished_final.json()["detail"]

        # A plain upload is not a partial one; malformed headers; a length or a
        # body on a final upload: 400.
        _problem(await _final(client, platform, [done, plain]), 400)
        _problem(await _final(client, platform, ["/elsewhere/abc"]), 400)
        _problem(await _final(client, platform, [done, done]), 400)
        _problem(await _final(client, platform, []), 400)
        _problem(await _final(client, platform, [done], **{"Upload-Length": "1000"}), 400)
        bad_kind = await client.post(
            platform.tus_endpoint,
            headers={**platform.auth, **TUS, "Upload-Concat": "both", "Upload-Length": "10"},
        )
        _problem(bad_kind, 400)

        # Nothing was used up by the refusals: the finished partial still joins.
        rest = await raw_patch(client, platform, unfinished, 1000, data[2000:])
        assert rest.status_code == 204
        joined = await _final(client, platform, [done, unfinished])
        assert joined.status_code == 201, joined.text
        video_id = joined.headers["location"].rsplit("/", 1)[-1]
        assert (await video_row(platform.backends, video_id)).sha256 == sha256_of(media.small)
