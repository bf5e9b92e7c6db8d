"""The service run on this machine, for tests and benchmarks alike: its processes
(``processes``: redis-server, gunicorn, the matching worker, the archive's Celery
processes; ``postgres``; ``node``: one whole node), clients that drive it (``crowd``:
many HTTP keep-alive clients; ``ws_crowd``: a WebSocket reconnect storm), the crash rounds
(``crash``) and the journal replay check (``replay``). Nothing here imports ``tests``."""
