"""The shapes clients speak: parsing and rendering of the native ``/chat`` and the
OpenAI-compatible bodies, their shared field checks and the tool fields. Pure
translation between JSON and the value objects of ``chalicelib.chat``; no I/O.
Deliberately imports nothing, so importing one module costs only that module."""
