"""The HTTP side: one aiohttp application serving the page, /ws, /stomp, /api, /health, /metrics."""
