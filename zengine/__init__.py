"""zengine: a plugin-based provisioning server for the Zoiper softphone."""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Decorate plugin functions with this marker to implement a zengine hook.
hookimpl = pluggy.HookimplMarker("zengine")

__all__ = ["__version__", "hookimpl"]
