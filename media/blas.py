"""Keep numpy's BLAS single-threaded around the media tick's small matrix products.

OpenBLAS splits even a 320×187 product over all cores and its worker threads then spin, burning a
second core for nothing on a 20 ms cadence (measured: 10 calls went from 0.24 % to 4 % of a core per
call). `single_threaded_blas()` sets the thread count to 1 for the duration of a block and restores it,
~3 µs per use; it is a no-op without `threadpoolctl`. Deployments should also export
OPENBLAS_NUM_THREADS=1 before Python starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_controllers: list[Any] | None = None


def _blas_controllers() -> list[Any]:
    global _controllers
    if _controllers is None:
        try:
            from threadpoolctl import ThreadpoolController

            _controllers = list(ThreadpoolController().select(user_api="blas").lib_controllers)
        except Exception:  # threadpoolctl missing or unable to inspect: leave BLAS alone
            _controllers = []
    return _controllers


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    changed = []
    for c in _blas_controllers():
        n = c.get_num_threads()
        if n != 1:
            c.set_num_threads(1)
            changed.append((c, n))
    try:
        yield
    finally:
        for c, n in changed:
            c.set_num_threads(n)
