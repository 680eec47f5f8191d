"""Scoring unlearned models against oracles with KLOM, and tables of the results.

:func:`score` reads from a store the margins of the models a method unlearned for forget set
``k`` (``unlearned/<D>/<method>/forget_set_<k>``) and of the oracles of that forget set, and
returns a JSON-ready record: per group (forget, retain, validation) the 95th and 99th
percentiles, mean and standard deviation of per-example KLOM with a bootstrap interval of the
95th percentile, the noise floor (one half of the oracles against the other half), and the
accuracies of the unlearned models.

Oracles with ids ``>= 1000`` are held out for methods that train on oracles (see
:mod:`klom_utils.unlearn`) and are never used for scoring; neither are oracles that the scored
method recorded as used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

GROUPS = ("forget", "retain", "validation")


@dataclass
class Margins:
    """Margins of the unlearned models and of the oracles on train then val examples."""

    unlearned: np.ndarray  # (n_unlearned, n_train + n_val)
    oracle: np.ndarray  # (n_oracles, n_train + n_val)
    forget: np.ndarray  # forget-set indices into the train split
    n_train: int
    model_ids: list
    oracle_ids: list
    folder: str


def _dataset(dataset, root=None):
    from .data import TensorDataset, load_dataset

    return dataset if isinstance(dataset, TensorDataset) else load_dataset(dataset, root=root)


def _open(store):
    from .store import Store, open_store

    return store if isinstance(store, Store) else open_store(store)


def folder_margins(store, folder: str, data, model_ids) -> np.ndarray:
    """Margins (n_models, n_train + n_val) of ``model_ids`` in ``folder``, train then val."""
    return np.concatenate([
        store.margins(folder, "train", labels=data.train_y.numpy(), model_ids=model_ids),
        store.margins(folder, "val", labels=data.val_y.numpy(), model_ids=model_ids),
    ], axis=1)


def used_oracle_ids(store, dataset: str, forget_set: int, method: str) -> list:
    """Oracle ids that ``method`` recorded as used to unlearn forget set ``k`` (none if none)."""
    from .store import unlearned_folder
    from .unlearn import CONFIG_FILE

    relpath = f"{unlearned_folder(dataset, method, forget_set)}/{CONFIG_FILE}"
    if not store.path(relpath).exists():
        return []
    return [int(i) for i in store.read_json(relpath).get("oracle_ids") or []]


def scoring_oracle_ids(store, dataset: str, forget_set: int, method: str | None = None) -> list:
    """The oracles of forget set ``k`` to score against: ids below 1000, without those that
    ``method`` used."""
    from .store import oracle_folder
    from .unlearn import HELD_OUT_ORACLE_START

    used = set(used_oracle_ids(store, dataset, forget_set, method)) if method else set()
    return [i for i in store.model_ids(oracle_folder(dataset, forget_set))
            if i < HELD_OUT_ORACLE_START and i not in used]


def load_margins(store, dataset, forget_set: int, method: str, *, model_ids=None,
                 oracle_ids=None, root=None) -> Margins:
    """The :class:`Margins` of ``method`` for forget set ``k`` and of the scoring oracles.

    ``model_ids``: default every complete model of the unlearned folder; ``oracle_ids``:
    default :func:`scoring_oracle_ids`. Giving an oracle that the method used is an error.
    """
    from .store import oracle_folder, unlearned_folder
    from .train import forget_indices

    store, data = _open(store), _dataset(dataset, root)
    folder = unlearned_folder(data.name, method, forget_set)
    if not store.path(folder).is_dir():
        raise FileNotFoundError(f"store {str(store.root)!r} has no models of method {method!r} "
                                f"for forget set {forget_set} ({folder!r}); run `klom unlearn` "
                                "first")
    if model_ids is None:
        model_ids = [i for i in store.model_ids(folder) if store.has_model(folder, i)]
    model_ids = sorted({int(i) for i in model_ids})
    if not model_ids:
        raise FileNotFoundError(f"{folder!r} holds no complete unlearned model")
    ofolder = oracle_folder(data.name, forget_set)
    if not store.path(ofolder).is_dir():
        raise FileNotFoundError(f"store {str(store.root)!r} has no oracles for forget set "
                                f"{forget_set} ({ofolder!r})")
    if oracle_ids is None:
        oracle_ids = scoring_oracle_ids(store, data.name, forget_set, method)
    else:
        oracle_ids = sorted({int(i) for i in oracle_ids})
        used = sorted(set(oracle_ids) & set(used_oracle_ids(store, data.name, forget_set, method)))
        if used:
            raise ValueError(f"oracles {used[:10]} were used by {method!r} to unlearn forget set "
                             f"{forget_set}; scoring against them would be circular")
    if not oracle_ids:
        raise FileNotFoundError(f"{ofolder!r} holds no oracle to score against (ids < 1000)")
    return Margins(
        unlearned=folder_margins(store, folder, data, model_ids),
        oracle=folder_margins(store, ofolder, data, oracle_ids),
        forget=forget_indices(store, data, forget_set), n_train=data.n_train,
        model_ids=model_ids, oracle_ids=oracle_ids, folder=folder)


def klom_scores(margins: Margins, **klom_kwargs) -> np.ndarray:
    """Per-example KLOM (train then val) of a :class:`Margins`."""
    from .metric import klom

    return klom(unlearned=margins.unlearned, oracle=margins.oracle, **klom_kwargs)


def accuracies(store, folder: str, data, model_ids, forget) -> dict:
    """Mean accuracy of the models ``model_ids`` of ``folder`` on forget, retain and test."""
    from .data import retain_mask

    keep = retain_mask(data.n_train, forget)
    y_train, y_val = data.train_y.numpy(), data.val_y.numpy()
    rows = []
    for i in model_ids:
        train = store.logits(folder, "train", i).numpy().argmax(1) == y_train
        val = store.logits(folder, "val", i).numpy().argmax(1) == y_val
        rows.append((train[forget].mean(), train[keep].mean(), val.mean()))
    mean = np.mean(rows, axis=0)
    return {"forget": float(mean[0]), "retain": float(mean[1]), "test": float(mean[2])}


def klom_settings(**klom_kwargs) -> dict:
    """The settings of :func:`klom_utils.metric.klom` (its defaults, updated), JSON-ready."""
    import inspect

    from .metric import klom

    settings = {k: p.default for k, p in inspect.signature(klom).parameters.items()
                if p.default is not inspect.Parameter.empty}
    unknown = sorted(set(klom_kwargs) - set(settings))
    if unknown:
        raise ValueError(f"unknown KLOM setting {unknown[0]!r}: expected one of {sorted(settings)}")
    settings.update(klom_kwargs)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}


def score(store, dataset, forget_set: int, method: str, *, model_ids=None, oracle_ids=None,
          n_boot: int = 200, level: float = 0.95, seed: int = 0, root=None,
          **klom_kwargs) -> dict:
    """Score ``method`` on forget set ``k`` of ``store``: a JSON-ready record.

    Keys: ``forget``/``retain``/``validation`` (each ``p95``, ``p99``, ``mean``, ``std``,
    ``count``, and the bootstrap interval ``p95_low``/``p95_high`` at ``level``),
    ``noise_floor`` (per group ``p95`` and ``mean`` of one half of the oracles against the
    other), ``accuracy`` (``forget``, ``retain``, ``test``: mean over the unlearned models),
    ``n_unlearned``, ``n_oracles``, ``method``, ``dataset``, ``forget_set``, ``forget_size``,
    ``klom`` (the estimator's settings), ``seconds``. ``klom_kwargs`` go to
    :func:`klom_utils.metric.klom` (``bins``, ``eps``, ``clip``, ``direction``, ``variant``).
    """
    from .metric import bootstrap_p95, noise_floor, summarize

    start = time.perf_counter()
    settings = klom_settings(**klom_kwargs)
    store, data = _open(store), _dataset(dataset, root)
    m = load_margins(store, data, forget_set, method, model_ids=model_ids, oracle_ids=oracle_ids)
    scores = klom_scores(m, **klom_kwargs)
    summary = summarize(scores, forget=m.forget, n_train=m.n_train)
    boot = bootstrap_p95(unlearned=m.unlearned, oracle=m.oracle, forget=m.forget,
                         n_train=m.n_train, n_boot=n_boot, seed=seed, level=level, **klom_kwargs)
    record = {"method": method, "dataset": data.name, "forget_set": int(forget_set),
              "forget_size": int(len(m.forget)), "n_unlearned": len(m.model_ids),
              "n_oracles": len(m.oracle_ids)}
    for g in GROUPS:
        record[g] = {**summary[g], "p95_low": boot[g]["low"], "p95_high": boot[g]["high"]}
    if len(m.oracle_ids) >= 2:
        floor = summarize(noise_floor(m.oracle, seed=seed, **klom_kwargs), forget=m.forget,
                          n_train=m.n_train)
        record["noise_floor"] = {g: {"p95": floor[g]["p95"], "mean": floor[g]["mean"]}
                                 for g in GROUPS}
        record["noise_floor"]["n_per_side"] = len(m.oracle_ids) // 2
    record["accuracy"] = accuracies(store, m.folder, data, m.model_ids, m.forget)
    record["klom"] = settings
    record.update(n_boot=int(n_boot), level=float(level), seed=int(seed),
                  model_ids=m.model_ids, oracle_ids=m.oracle_ids,
                  seconds=time.perf_counter() - start)
    return record


def score_many(store, dataset, forget_sets, methods, *, progress: bool = True, **kwargs) -> list:
    """:func:`score` for every (forget set, method) pair; a list of records."""
    from tqdm.auto import tqdm

    store, data = _open(store), _dataset(dataset, kwargs.pop("root", None))
    pairs = [(k, m) for k in forget_sets for m in methods]
    return [score(store, data, k, m, **kwargs)
            for k, m in tqdm(pairs, desc="scoring", disable=not progress)]


def _interval(group: dict) -> str:
    return f"{group['p95']:.2f} [{group['p95_low']:.2f}, {group['p95_high']:.2f}]"


def results_table(records) -> str:
    """A plain-text table of records from :func:`score`: per method and forget set, the 95th
    percentile of each group with its interval, N, and accuracies; plus a noise-floor row per
    forget set."""
    records = list(records)
    if not records:
        raise ValueError("results_table needs at least one record")
    header = ["forget set", "method", "N (unl/orc)", "forget p95 [CI]", "retain p95 [CI]",
              "validation p95 [CI]", "acc forget/retain/test"]
    groups = {}
    for r in records:  # rows grouped by forget set, in order of first appearance
        groups.setdefault((r["dataset"], r["forget_set"]), []).append(r)
    rows = []
    for group in groups.values():
        name = f"{group[0]['forget_set']} (n={group[0]['forget_size']})"
        for r in group:
            acc = r["accuracy"]
            rows.append([name, r["method"], f"{r['n_unlearned']}/{r['n_oracles']}"]
                        + [_interval(r[g]) for g in GROUPS]
                        + [f"{acc['forget']:.3f}/{acc['retain']:.3f}/{acc['test']:.3f}"])
        floor = next((r["noise_floor"] for r in group if r.get("noise_floor")), None)
        if floor:
            n = floor["n_per_side"]
            rows.append([name, "noise floor", f"{n}/{n}"]
                        + [f"{floor[g]['p95']:.2f}" for g in GROUPS] + [""])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]
    return "\n".join(out)
