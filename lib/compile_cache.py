"""JAX's persistent compilation cache for runs: a resumed or repeated run reads its compiled
steps from disk instead of compiling them again (minutes for a large model on an accelerator).

`compile_cache` in the config picks the directory:
- "auto": the directory JAX is already configured with (JAX_COMPILATION_CACHE_DIR), else
  `.jax_cache` beside the workdir (its parent), so sibling runs (seeds, sweeps, stages, a
  re-run after preemption) share it;
- "off": no persistent cache beyond the one JAX was configured with when this module was
  imported (JAX_COMPILATION_CACHE_DIR), if any;
- any other value: that directory (local or gs://).

JAX initialises its cache once per process, at the first compilation; the first run of a
process decides the directory under "auto" (lib.main sets it from the top-level workdir
before a procedure's stages run). Only executables whose compilation took at least
`jax_persistent_cache_min_compile_time_secs` (JAX's default: 1 s) are written, and in a
multi-process run only process 0 writes: other hosts read them where the directory is on shared
storage (a gs:// or NFS workdir). The cache is not pruned; delete the directory to reclaim it.
"""

from __future__ import annotations

import threading

import jax
from etils import epath
from jax.experimental.compilation_cache import compilation_cache

AUTO, OFF = "auto", "off"
DIRNAME = ".jax_cache"
_AT_IMPORT = jax.config.jax_compilation_cache_dir  # the user's own setting, if any
_HIT = "/jax/compilation_cache/cache_hits"
_SAVED = "/jax/compilation_cache/compile_time_saved_sec"


def directory(setting: str, workdir) -> str | None:
    """The cache directory a run in `workdir` uses under `setting` (None: no cache)."""
    configured = jax.config.jax_compilation_cache_dir
    if setting == OFF:
        return _AT_IMPORT or None
    if setting == AUTO:
        return configured or str(epath.Path(workdir).parent / DIRNAME)
    return setting


def enable(setting: str, workdir) -> str | None:
    """Points JAX's persistent cache at directory(setting, workdir); returns that directory.
    A directory other than JAX's current one replaces it (the cache re-opens there)."""
    path = directory(setting, workdir)
    if path != (jax.config.jax_compilation_cache_dir or None):
        compilation_cache.set_cache_dir(path)
        compilation_cache.reset_cache()  # re-initialised at the next compilation, at `path`
    return path


class Hits:
    """Counts persistent-cache hits, and the compile seconds they saved, while open::

        with compile_cache.Hits() as hits:
            step.lower(...).compile()
        hits.count, hits.saved_s
    """

    _lock = threading.Lock()

    def __init__(self):
        self.count, self.saved_s = 0, 0.0

    def _event(self, event: str, **_) -> None:
        if event == _HIT:
            self.count += 1

    def _duration(self, event: str, duration_secs: float, **_) -> None:
        if event == _SAVED:
            self.saved_s += duration_secs

    def __enter__(self) -> Hits:
        with self._lock:
            jax.monitoring.register_event_listener(self._event)
            jax.monitoring.register_event_duration_secs_listener(self._duration)
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            jax.monitoring.unregister_event_listener(self._event)
            jax.monitoring.unregister_event_duration_listener(self._duration)
