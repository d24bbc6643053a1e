"""The web service: FastAPI under /api/v1, with the browser UI at /. Start it with `sahay serve`."""
