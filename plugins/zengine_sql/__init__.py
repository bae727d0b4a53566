"""zengine sql backend (work in progress)."""
