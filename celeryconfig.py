"""Celery settings for the matching queue. Check with ``python -m celeryconfig``.

The task is only a trigger ("apply the journal of SYMBOL through SEQ"): order and
exactly-once come from the journal and the applied cursor, not from Celery. So:
- task_acks_late + task_reject_on_worker_lost: a task in flight when the worker is
  killed goes back to the queue instead of being lost. Safe because the task is
  idempotent (a command already applied is skipped by the cursor).
- worker_prefetch_multiplier = 1: reserve one message at a time; with a solo pool and
  concurrency 1 the symbol's commands are applied by exactly one thread.
- visibility_timeout 30 s: an unacked trigger of a killed worker is redelivered after
  30 s; the worker's own sweep (every 250 ms) does not wait for it anyway.
- Queues: one per symbol, ``matching.<SYMBOL>``; a worker consumes the queues of the
  symbols it owns (WORKER_SYMBOLS), so symbols spread over workers by routing.
- Broker: CELERY_BROKER_URL, else the store's Redis; through Sentinel
  (``sentinel://a;sentinel://b``, master REDIS_SENTINEL_MASTER) when REDIS_SENTINELS is
  set, so the broker follows a failover too. A Redis Cluster store needs its own broker
  (kombu has no Cluster transport): settings refuse to start without one.
- No result backend: nobody waits on Celery results (REST waits on the event stream).
"""

from settings import load_settings

_settings = load_settings()

broker_url = _settings.broker
broker_connection_retry_on_startup = True
broker_transport_options = _settings.broker_transport_options  # + master_name for sentinel://
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
worker_concurrency = 1
task_ignore_result = True
result_backend = None
task_serializer = "json"
accept_content = ["json"]
task_default_queue = "matching"
worker_hijack_root_logger = False
worker_send_task_events = True  # Flower shows tasks as they run
task_send_sent_event = True
worker_redirect_stdouts = False

if __name__ == "__main__":
    for name, value in sorted(globals().items()):
        if not name.startswith("_") and name.islower():
            print(f"{name} = {value!r}")
