"""The model: plain data and pure policy. No I/O, no asyncio."""
