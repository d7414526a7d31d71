"""Benchmarks of hakuna-async against raw aiohttp and httpx-based clients (``make bench``)."""
