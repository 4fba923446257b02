"""Videos and their content-addressed assets: the one owner of the `videos` and
`video_assets` tables. `model` says what a video is (its states, a rendition);
`store` holds every query on those tables, for the upload service, the
transcode worker, the gateway and the feed."""
