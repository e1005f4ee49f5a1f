"""Benchmarks of devin_async against raw aiohttp and the official SDK (`python -m benchmarks`)."""
