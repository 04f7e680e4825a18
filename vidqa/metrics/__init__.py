"""Pure metric functions over arrays (no I/O, no models)."""
