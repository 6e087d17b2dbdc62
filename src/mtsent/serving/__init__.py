"""The HTTP service: `create_app(model, settings)` builds the FastAPI app, `serve` runs it with uvicorn."""

from mtsent.serving.app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
