from __future__ import annotations

import pytest

from tests.ops.helpers import Processes


@pytest.fixture
def procs(tmp_path):
    p = Processes(tmp_path)
    yield p
    p.close()
