"""GenEvolve behind an ASGI app: one shared runtime, streamed events, cancellation on disconnect.

The app lives in :mod:`examples.webapp.app` (``uvicorn examples.webapp.app:app``);
its settings in :mod:`examples.webapp.settings`. See ``README.md`` here.
"""
