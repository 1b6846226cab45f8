"""The pure core: no I/O, no database, no asyncio servers; everything above builds on it."""
