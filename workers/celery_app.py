"""The Celery application (configuration lives in ``celeryconfig``)."""

from __future__ import annotations

from celery import Celery

APPLY_TASK = "matching.apply_through"


def make_celery(broker_url: str | None = None, transport_options: dict | None = None) -> Celery:
    """A Celery app from ``celeryconfig``; the web passes its own settings' broker."""
    celery = Celery("matching", include=["workers.tasks"])
    celery.config_from_object("celeryconfig")
    if broker_url:
        celery.conf.broker_url = broker_url
    if transport_options is not None:
        celery.conf.broker_transport_options = transport_options
    return celery


def queue_for(symbol: str) -> str:
    return f"matching.{symbol}"


def send_wakeup(celery: Celery, symbol: str, sequence: int) -> None:
    """Ask the symbol's matcher to apply its journal through ``sequence``."""
    celery.send_task(APPLY_TASK, (symbol, sequence), queue=queue_for(symbol))


app = make_celery()
