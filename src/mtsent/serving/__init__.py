"""The HTTP service: `create_app(model, settings)` builds the FastAPI app, `serve` runs it with uvicorn.

Imported lazily, so `mtsent.serving.system` works without the `serve` extra (FastAPI, uvicorn) installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mtsent.serving.app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from mtsent.serving.app import ServeSettings, create_app

        return {"ServeSettings": ServeSettings, "create_app": create_app}[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
