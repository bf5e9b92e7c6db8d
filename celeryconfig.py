"""The Celery configuration from the environment, for the ``celery -A ...`` command line
(flower, beat, the archiver), which has no settings to give. Processes that hold their
settings configure their app with ``workers.celery_app.configure`` and never import this.
What each setting is for: ``workers.celery_app.config``. Check with ``python -m celeryconfig``.
"""

from settings import load_settings
from workers.celery_app import config

globals().update(config(load_settings()))

if __name__ == "__main__":
    for name, value in sorted(config(load_settings()).items()):
        print(f"{name} = {value!r}")
