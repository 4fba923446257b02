"""The browser client, served by the gateway at `/`.

Its sources live in the checkout's `web/` folder (native ES modules, no build
step); `build` fetches the pinned npm packages of `web/package-lock.json` and
assembles them with the sources into one content-hashed static folder; `serve`
mounts that folder on the app with long-lived caching, an uncached
`index.html`, the deep-link fallback and a Content-Security-Policy.
"""
