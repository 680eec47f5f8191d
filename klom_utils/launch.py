"""Many processes, one store: the steps (training, unlearning, subset models) as job arrays.

- Every model is claimed before it is worked on (:mod:`klom_utils.claims`), so concurrent
  processes on one store never do one model twice.
- :func:`klom_utils.ids.id_slices` and :func:`klom_utils.ids.shard_of` split model ids
  between jobs: by hand (``"2/8"``) or from a SLURM array (``"auto"``).
- :func:`run_array` runs one function per slice as a job array with submitit's local or SLURM
  executor (``pip install submitit``), waits and returns each job's result, or returns the job
  ids at once (``wait=False``).
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from .datamodels import train_subset_models
from .ids import id_slices, shard_of
from .train import train_models
from .unlearning import unlearn_store

EXECUTORS = ("none", "local", "slurm")


# ------------------------------------------------------------------------------------- arrays

@dataclass
class ArrayOptions:
    """How to run a job array: ``executor`` ``"local"`` (this machine, one process per job) or
    ``"slurm"``, with ``jobs`` jobs; the SLURM fields map to submitit's ``slurm_*`` settings,
    ``slurm_options`` to ``#SBATCH --KEY=VALUE`` lines."""

    executor: str = "none"
    jobs: int = 1
    partition: Optional[str] = None
    gpus_per_job: int = 0
    cpus_per_job: Optional[int] = None
    mem_gb: Optional[float] = None
    timeout_min: int = 60
    array_parallelism: Optional[int] = None
    slurm_options: Dict[str, str] = field(default_factory=dict)
    wait: bool = True

    def __post_init__(self):
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, "
                             f"got {self.executor!r}")
        for name in ("jobs", "timeout_min"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("gpus_per_job", "cpus_per_job", "array_parallelism"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.mem_gb is not None and not self.mem_gb > 0:
            raise ValueError(f"mem_gb must be positive, got {self.mem_gb!r}")
        if self.executor == "none" and self.jobs != 1:
            raise ValueError(f"{self.jobs} jobs need an executor ('local' or 'slurm'), "
                             "not 'none'")

    def submitit_parameters(self) -> Dict[str, Any]:
        """The settings of submitit's executor for these options."""
        params: Dict[str, Any] = {"timeout_min": self.timeout_min}
        if self.executor == "slurm":
            params["slurm_gpus_per_node"] = self.gpus_per_job
            params["slurm_array_parallelism"] = self.array_parallelism or self.jobs
            if self.partition:
                params["slurm_partition"] = self.partition
            if self.cpus_per_job:
                params["slurm_cpus_per_task"] = self.cpus_per_job
            if self.mem_gb:
                params["slurm_mem_gb"] = self.mem_gb
            if self.slurm_options:
                params["slurm_additional_parameters"] = dict(self.slurm_options)
        elif self.executor == "local":
            params["gpus_per_node"] = self.gpus_per_job
            if self.cpus_per_job:
                params["cpus_per_task"] = self.cpus_per_job
        return params


def parse_slurm_options(items: Sequence[str]) -> Dict[str, str]:
    """``["KEY=VALUE", ...]`` -> ``{KEY: VALUE}`` (``--slurm-option account=abc``)."""
    out = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--slurm-option takes KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def _submitit():
    try:
        import submitit
    except ImportError:
        raise ImportError("job arrays need submitit: pip install submitit (or "
                          "pip install 'klom_utils[cluster]')") from None
    return submitit


def run_array(fn: Callable[[list], Any], slices: Sequence[list], options: ArrayOptions,
              log_dir, name: str = "klom") -> List[Any]:
    """Run ``fn(slice)`` for every slice as one job array; returns the results in order, or
    the job ids when ``options.wait`` is false. Job logs go to ``log_dir``.

    ``fn`` must be picklable (a module-level function, or a ``functools.partial`` of one).
    A failed job raises ``RuntimeError`` naming it and its log files, after the others end.
    """
    if options.executor == "none":
        return [fn(s) for s in slices]
    submitit = _submitit()
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    cluster = "local" if options.executor == "local" else "slurm"
    executor = submitit.AutoExecutor(folder=str(log_dir / "%j"), cluster=cluster)
    executor.update_parameters(name=name, **options.submitit_parameters())
    jobs = executor.map_array(fn, list(slices))
    if not options.wait:
        return [job.job_id for job in jobs]
    results, failed = [], []
    for job in jobs:
        try:
            results.append(job.result())
        except Exception as err:  # a job's own error, re-raised below with its logs
            failed.append(f"job {job.job_id}: {_last_error(str(err))} "
                          f"(logs: {job.paths.stdout}, {job.paths.stderr})")
            results.append(None)
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(jobs)} jobs failed; " + "; ".join(failed))
    return results


def _last_error(text: str) -> str:
    """The last ``SomeError: message`` line of a job's traceback (or its last line)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b", line)]
    return (errors or lines or ["failed"])[-1]


# ------------------------------------------------------------------------ steps as job arrays

def train_job(kwargs: dict, ids: list) -> list:
    """One job of ``train``: :func:`klom_utils.train.train_models` on ``ids``."""
    return train_models(model_ids=ids, **kwargs)


def unlearn_job(kwargs: dict, ids: list, plugins: Sequence[str] = ()) -> list:
    """One job of ``unlearn``: :func:`klom_utils.unlearning.unlearn_store` on ``ids`` (after
    importing the ``plugins`` that register methods: a job runs in a fresh process)."""
    import_plugins(plugins)
    return unlearn_store(model_ids=ids, **kwargs)["written"]


def subset_job(kwargs: dict, ids: list) -> list:
    """One job of ``datamodels``: :func:`klom_utils.datamodels.train_subset_models` on ``ids``."""
    return train_subset_models(model_ids=ids, **kwargs)


STEPS: Dict[str, Callable[..., list]] = {"train": train_job, "unlearn": unlearn_job, "datamodels": subset_job}


def run_models(step: str, model_ids: Sequence[int], options: Optional[ArrayOptions] = None, *,
               shard: Optional[str] = None, plugins: Sequence[str] = (),
               **kwargs: Any) -> List[Any]:
    """Run a step (``"train"``, ``"unlearn"``, ``"datamodels"``) on ``model_ids``: in this
    process, on the ``shard`` of this process (``"I/N"``, ``"auto"``), or as a job array
    (``options``); returns the ids done, or the job ids (strings) when the array is not
    waited for (``options.wait=False``).

    ``kwargs`` go to the step's function (``train_models``, ``unlearn_store``,
    ``train_subset_models``) and must include ``store``; job logs go to
    ``<store>/logs/<step>/``. For example::

        run_models("train", range(200), ArrayOptions(executor="slurm", jobs=20,
                   partition="gpu", gpus_per_job=1), dataset="cifar10",
                   store="/shared/store", forget_set=1)
    """
    if step not in STEPS:
        raise ValueError(f"step must be one of {', '.join(STEPS)}, got {step!r}")
    options = options or ArrayOptions()
    if shard is not None and options.executor != "none":
        raise ValueError("a shard is a slice inside a running job; it cannot be combined with "
                         "an executor")
    ids = [int(i) for i in model_ids]
    if shard is not None:
        ids = shard_of(ids, shard)
    extra: dict = {"plugins": tuple(plugins)} if step == "unlearn" else {}
    job: Callable[[list], Any] = functools.partial(STEPS[step], kwargs, **extra)
    if options.executor == "none":
        return job(ids)
    slices = id_slices(ids, options.jobs)
    out = run_array(job, slices, options, Path(kwargs["store"]) / "logs" / step,
                    name=f"klom-{step}")
    if not options.wait:
        return out  # the job ids
    for n, (part, done) in enumerate(zip(slices, out), 1):  # each job's result, on stderr
        print(f"{step} job {n}/{len(slices)} (ids {part[0]}-{part[-1]}): {len(done)} done",
              file=sys.stderr)
    return sorted(i for done in out for i in done)


def import_plugins(modules: Sequence[str]) -> None:
    """Import each module (they register unlearning methods), from the working directory too."""
    if modules and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ValueError(f"plugin {module}: cannot import it ({err}); give a module name "
                             "importable from the working directory or PYTHONPATH") from None
