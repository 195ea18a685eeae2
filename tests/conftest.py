import numpy as np
import pytest

import mixq

ISAS = mixq.available_isas()


@pytest.fixture(params=ISAS)
def isa(request):
    """Runs the test once per kernel path this machine can execute, all in one process."""
    before = mixq.cpu_info()["isa"]
    mixq.set_isa(request.param)
    yield request.param
    mixq.set_isa(before)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
