"""``ecrlink serve``: the HTTP bridge that lets registers in other languages take card
payments through the same ``Terminal`` flow (journal, guards, recovery).

Importing this package imports nothing heavy: ``config`` is read by the CLI's config
loader on every command; Starlette and uvicorn are imported only by ``app`` and by
the ``serve`` command when it runs. The contract is ``docs/bridge-v1.md``.
"""
