"""``python -m archive.migrate``: create or upgrade the archive's schema at ARCHIVE_URL."""

from __future__ import annotations

from archive import db
from settings import load_settings

if __name__ == "__main__":
    url = load_settings().archive_url
    db.migrate(url)
    print(f"archive schema up to date at {db.engine(url).url!r}")
