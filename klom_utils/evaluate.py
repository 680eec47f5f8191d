"""Scoring unlearned models against oracles with KLOM, and tables of the results.

:func:`score` reads from a store the margins of the models a method unlearned for forget set
``k`` (``unlearned/<D>/<method>/forget_set_<k>``) and of the oracles of that forget set, and
returns a JSON-ready record: per group (forget, retain, validation) the 95th and 99th
percentiles, mean and standard deviation of per-example KLOM with an interval for the expected
95th percentile at the scored number of models per side (``N``), the noise floor at the same
``N`` (oracles against disjoint oracles), diagnostics (outlier models, small or unequal ``N``,
small forget sets) and the accuracies of the unlearned models. By default a method is scored
against as many oracles as it has unlearned models: KLOM at different ``N`` is not comparable.

Oracles with ids ``>= 1000`` are held out for methods that train on oracles (see
:mod:`klom_utils.unlearn`) and are never used for scoring; neither are oracles that the scored
method recorded as used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from .diagnostics import SMALL_FORGET, diagnose, outlier_models, outlier_warnings
from .metric import klom, summarize
from .uncertainty import MIN_MODELS, check_interval_settings, noise_floor, p95_interval

if TYPE_CHECKING:
    from ._typing import ArrayLike, DatasetLike, PathLike, Record, StoreLike
    from .data import TensorDataset
    from .store import Store

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
    oracle_pool: list  # the oracles one may score against (given ids, or scoring_oracle_ids)


def _dataset(dataset: DatasetLike, root: PathLike | None = None) -> TensorDataset:
    from .data import TensorDataset, load_dataset

    return dataset if isinstance(dataset, TensorDataset) else load_dataset(dataset, root=root)


def _open(store: StoreLike) -> Store:
    from .store import Store, open_store

    return store if isinstance(store, Store) else open_store(store)


def folder_margins(store: Store, folder: str, data: TensorDataset | tuple | None,
                   model_ids: Sequence[int] | None) -> np.ndarray:
    """Margins (n_models, n_train + n_val) of ``model_ids`` in ``folder``, train then val.

    ``data``: the dataset, or its labels ``(train, val)``, or None where the folder holds
    margins (files or stacked; logits need labels); ``model_ids`` None: every model."""
    from .data import split_labels

    train_y, val_y = split_labels(data)
    return np.concatenate([
        store.margins(folder, "train", labels=train_y, model_ids=model_ids),
        store.margins(folder, "val", labels=val_y, model_ids=model_ids),
    ], axis=1)


def used_oracle_ids(store: Store, dataset: str, forget_set: int, method: str) -> list[int]:
    """Oracle ids that ``method`` recorded as used to unlearn forget set ``k`` (none if none)."""
    from .store import unlearned_folder
    from .unlearn import CONFIG_FILE

    relpath = f"{unlearned_folder(dataset, method, forget_set)}/{CONFIG_FILE}"
    if not store.path(relpath).exists():
        return []
    return [int(i) for i in store.read_json(relpath).get("oracle_ids") or []]


def scoring_oracle_ids(store: Store, dataset: str, forget_set: int,
                       method: str | None = None) -> list[int]:
    """The oracles of forget set ``k`` to score against: ids below 1000, without those that
    ``method`` used."""
    from .store import oracle_folder
    from .unlearn import HELD_OUT_ORACLE_START

    used = set(used_oracle_ids(store, dataset, forget_set, method)) if method else set()
    return [i for i in store.model_ids(oracle_folder(dataset, forget_set))
            if i < HELD_OUT_ORACLE_START and i not in used]


def load_margins(store: StoreLike, dataset: DatasetLike, forget_set: int, method: str, *,
                 model_ids: Iterable[int] | None = None, oracle_ids: Iterable[int] | None = None,
                 root: PathLike | None = None) -> Margins:
    """The :class:`Margins` of ``method`` for forget set ``k`` and of the oracles it is scored
    against, at equal numbers of models per side by default.

    ``model_ids``: default every complete model of the unlearned folder; ``oracle_ids``:
    default the ``N`` lowest of :func:`scoring_oracle_ids`, ``N`` = the number of unlearned
    models (where fewer oracles exist, ``N`` is their number and the ``N`` lowest unlearned
    ids are used, unless ``model_ids`` was given). Giving an oracle that the method used is an
    error.
    """
    from .store import oracle_folder, unlearned_folder
    from .train import forget_indices

    store, data = _open(store), _dataset(dataset, root)
    folder = unlearned_folder(data.name, method, forget_set)
    if not store.path(folder).is_dir():
        raise FileNotFoundError(f"store {str(store.root)!r} has no models of method {method!r} "
                                f"for forget set {forget_set} ({folder!r}); run `klom unlearn` "
                                "first")
    given_models = model_ids is not None
    if model_ids is None:
        model_ids = store.complete_model_ids(folder)
    model_ids = sorted({int(i) for i in model_ids})
    if not model_ids:
        raise FileNotFoundError(f"{folder!r} holds no complete unlearned model")
    ofolder = oracle_folder(data.name, forget_set)
    if not store.path(ofolder).is_dir():
        raise FileNotFoundError(f"store {str(store.root)!r} has no oracles for forget set "
                                f"{forget_set} ({ofolder!r})")
    if oracle_ids is None:
        pool = scoring_oracle_ids(store, data.name, forget_set, method)
        n = len(model_ids) if given_models else min(len(model_ids), len(pool))
        model_ids, oracle_ids = model_ids[:n], pool[:n]
    else:
        oracle_ids = sorted({int(i) for i in oracle_ids})
        used = sorted(set(oracle_ids) & set(used_oracle_ids(store, data.name, forget_set, method)))
        if used:
            raise ValueError(f"oracles {used[:10]} were used by {method!r} to unlearn forget set "
                             f"{forget_set}; scoring against them would be circular")
        pool = oracle_ids
    if not oracle_ids:
        raise FileNotFoundError(f"{ofolder!r} holds no oracle to score against (ids < 1000)")
    return Margins(
        unlearned=folder_margins(store, folder, data, model_ids),
        oracle=folder_margins(store, ofolder, data, oracle_ids),
        forget=forget_indices(store, data, forget_set), n_train=data.n_train,
        model_ids=model_ids, oracle_ids=oracle_ids, folder=folder, oracle_pool=pool)


def klom_scores(margins: Margins, **klom_kwargs: Any) -> np.ndarray:
    """Per-example KLOM (train then val) of a :class:`Margins`."""
    return klom(unlearned=margins.unlearned, oracle=margins.oracle, **klom_kwargs)


def accuracies(store: Store, folder: str, data: TensorDataset, model_ids: Sequence[int],
               forget: ArrayLike) -> dict[str, float]:
    """Mean accuracy of the models ``model_ids`` of ``folder`` on forget, retain and test."""
    from .data import retain_mask

    keep = retain_mask(data.n_train, forget)
    y_train, y_val = data.train_y.numpy(), data.val_y.numpy()
    train = store.logits_of(folder, "train", model_ids).argmax(-1) == y_train
    val = store.logits_of(folder, "val", model_ids).argmax(-1) == y_val
    return {"forget": float(train[:, forget].mean()), "retain": float(train[:, keep].mean()),
            "test": float(val.mean())}


def klom_settings(**klom_kwargs: Any) -> Record:
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


def score(store: StoreLike, dataset: DatasetLike, forget_set: int, method: str, *,
          model_ids: Iterable[int] | None = None, oracle_ids: Iterable[int] | None = None,
          level: float = 0.95, n_splits: int = 25, seed: int = 0, root: PathLike | None = None,
          allow_mixed_recipes: bool = False, **klom_kwargs: Any) -> Record:
    """Score ``method`` on forget set ``k`` of ``store``: a JSON-ready record.

    The method's ``N`` unlearned models are scored against ``N`` oracles (see
    :func:`load_margins`). Keys: ``forget``/``retain``/``validation`` (each ``p95``, ``p99``,
    ``mean``, ``std``, ``count`` of per-example KLOM, and ``p95_low``/``p95_high``/``p95_sd``:
    the interval at ``level`` for the expected 95th percentile at this ``N``, see
    :func:`klom_utils.uncertainty.p95_interval`; ``forget`` also ``above_retain_p99``);
    ``n_unlearned``, ``n_oracles`` and ``n_per_side`` (``None`` when they differ);
    ``noise_floor`` (per group ``p95`` and ``mean`` of oracles against disjoint oracles, with
    its ``n_per_side`` and ``oracle_ids``: ``N`` when ``2N`` scoring oracles exist, else the
    largest size they allow; from the given ``oracle_ids`` when given); ``matched`` (only when
    the floor's ``n_per_side`` is below either side's ``N``: the method rescored at the
    floor's size on its lowest ids, per group ``p95``, ``p95_low``, ``p95_high``, with
    ``n_per_side``, ``model_ids``, ``oracle_ids``); ``diagnostics`` (:func:`klom_utils.
    diagnostics.diagnose`: outlier models, small or unequal ``N``, small forget sets, nan
    scores; plus ``fewer_oracles`` and ``no_floor``; all in ``warnings``); ``accuracy`` (``forget``, ``retain``, ``test``: mean over the unlearned
    models); ``klom`` (the estimator's settings); ``interval`` (what the interval covers);
    ``method``, ``dataset``, ``forget_set``, ``forget_size``, ``model_ids``, ``oracle_ids``,
    ``seed``, ``seconds``. ``klom_kwargs`` go to :func:`klom_utils.metric.klom` (``bins``,
    ``eps``, ``clip``, ``direction``, ``variant``). Full models and oracles trained with
    different recorded recipes are refused (:func:`recipe_differences`), or with
    ``allow_mixed_recipes`` scored with a ``mixed_recipes`` warning.
    """
    from .store import oracle_folder

    start = time.perf_counter()
    klom_settings(**klom_kwargs)  # bad settings fail before anything is read
    check_interval_settings(level, n_splits)
    store, data = _open(store), _dataset(dataset, root)
    m = load_margins(store, data, forget_set, method, model_ids=model_ids, oracle_ids=oracle_ids)
    have = {i: row for row, i in enumerate(m.oracle_ids)}

    def oracle_margins(ids):
        if all(i in have for i in ids):
            return m.oracle[[have[i] for i in ids]]
        return folder_margins(store, oracle_folder(data.name, forget_set), data, ids)

    mixed = recipe_differences(store, data.name, forget_set)
    if mixed and not allow_mixed_recipes:
        raise ValueError(f"the full models and the oracles of forget set {forget_set} were "
                         f"trained with different recipes ({'; '.join(mixed)}): their scores "
                         "would mix two kinds of models (allow_mixed_recipes=True, or "
                         "--allow-mixed-recipes, scores them anyway, with a warning)")
    record: Record = {"method": method, "dataset": data.name, "forget_set": int(forget_set)}
    record.update(_score(m, oracle_margins, level=level, n_splits=n_splits, seed=seed,
                         **klom_kwargs))
    if mixed:
        record["diagnostics"]["warnings"].append({"kind": "mixed_recipes", "message": (
            "full models and oracles were trained with different recipes: "
            + "; ".join(mixed))})
    available = len(store.complete_model_ids(m.folder))
    if model_ids is None and available > len(m.model_ids):
        record["diagnostics"]["warnings"].append({"kind": "fewer_oracles", "message": (
            f"only {len(m.oracle_ids)} oracles to score against: scored the "
            f"{len(m.model_ids)} lowest ids of the {available} unlearned models (train more "
            "oracles to use them all)")})
    record["accuracy"] = accuracies(store, m.folder, data, m.model_ids, m.forget)
    record["seconds"] = time.perf_counter() - start
    return record


#: Keys of a training record that differ between full models and oracles by design.
_GROUP_KEYS = ("group", "n_train_examples")


def recipe_differences(store: Store, dataset: str, forget_set: int) -> list[str]:
    """How the recorded training recipes of the full models and of the oracles of
    ``forget_set`` differ (``"key: full models x, oracles y"``); empty where they agree or a
    folder has no record (a Hub snapshot)."""
    from .store import full_models_folder, oracle_folder

    records = []
    for folder in (full_models_folder(dataset), oracle_folder(dataset, forget_set)):
        path = f"{folder}/klom_train.json"
        records.append(store.read_json(path) if store.path(path).is_file() else None)
    if None in records:
        return []
    full, oracles = records
    return [f"{k}: full models {full.get(k)!r}, oracles {oracles.get(k)!r}"
            for k in sorted(set(full) | set(oracles))
            if k not in _GROUP_KEYS and full.get(k) != oracles.get(k)]


def score_arrays(unlearned: ArrayLike, oracle: ArrayLike, forget: ArrayLike, n_train: int, *,
                 level: float = 0.95, n_splits: int = 25, seed: int = 0,
                 **klom_kwargs: Any) -> Record:
    """:func:`score` for margins given as arrays, without a store.

    ``unlearned`` ``(N, n_examples)`` and ``oracle`` ``(M, n_examples)`` hold margins on the
    train examples then the validation ones; ``forget`` indexes the train examples, the first
    ``n_train`` columns. The unlearned models are scored against the first ``min(N, M)``
    oracle rows; every oracle row is in the pool of the noise floor (at ``N`` when ``M >= 2N``,
    else at ``M // 2`` with the method rescored there, labelled). No accuracies (no logits).
    """
    start = time.perf_counter()
    klom_settings(**klom_kwargs)
    check_interval_settings(level, n_splits)
    u, o = _margin_rows("unlearned", unlearned), _margin_rows("oracle", oracle)
    if u.shape[1] != o.shape[1]:
        raise ValueError(f"unlearned margins cover {u.shape[1]} examples, oracle margins "
                         f"{o.shape[1]}: both must cover the same train then validation examples")
    if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)) \
            or not 0 < n_train <= u.shape[1]:
        raise ValueError(f"n_train must be an integer in [1, {u.shape[1]}] (the number of "
                         f"train columns), got {n_train!r}")
    f = np.asarray(forget)
    if f.ndim != 1 or f.size == 0 or not np.issubdtype(f.dtype, np.integer) \
            or f.min() < 0 or f.max() >= n_train:
        raise ValueError(f"forget must be a non-empty 1-D array of train indices in "
                         f"[0, {n_train}), got {f.shape} {f.dtype} values")
    n = min(len(u), len(o))
    m = Margins(unlearned=u, oracle=o[:n], forget=np.unique(f), n_train=int(n_train),
                model_ids=list(range(len(u))), oracle_ids=list(range(n)), folder="",
                oracle_pool=list(range(len(o))))
    record = _score(m, lambda ids: o[ids], level=level, n_splits=n_splits, seed=seed,
                    **klom_kwargs)
    record["seconds"] = time.perf_counter() - start
    return record


def _margin_rows(name: str, array: ArrayLike) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{name} margins must be a 2-D array (n_models, n_examples), "
                         f"got shape {a.shape}")
    return a


def _score(m: Margins, oracle_margins: Callable[[list], np.ndarray], *, level: float,
           n_splits: int, seed: int, **klom_kwargs: Any) -> Record:
    """The part of a record that needs only margins: scores, intervals, floor, diagnostics."""
    settings = klom_settings(**klom_kwargs)
    n_u, n_o = len(m.model_ids), len(m.oracle_ids)
    groups: dict[str, Any] = dict(forget=m.forget, n_train=m.n_train)
    interval: dict[str, Any] = dict(level=level, n_splits=n_splits, seed=seed, **klom_kwargs)
    scores = klom_scores(m, **klom_kwargs)
    summary = summarize(scores, **groups)
    ci = _p95_interval(m.unlearned, m.oracle, groups, interval)
    record: Record = {"forget_size": int(len(m.forget)), "n_unlearned": n_u, "n_oracles": n_o,
                      "n_per_side": n_u if n_u == n_o else None}
    for g in GROUPS:
        record[g] = {**summary[g], "p95_low": ci[g]["low"], "p95_high": ci[g]["high"],
                     "p95_sd": ci[g]["sd"]}
    diagnostics = diagnose(unlearned=m.unlearned, oracle=m.oracle, scores=scores, **groups,
                           unlearned_ids=m.model_ids, oracle_ids=m.oracle_ids)
    record["forget"]["above_retain_p99"] = diagnostics["forget_above_retain_p99"]

    # the floor: N oracles against N others, from the oracles one may score against (the
    # ones given, when given); where fewer than 2N exist, at the largest size they allow, and
    # the method rescored at that size (also when the sides differ)
    pool = m.oracle_pool
    n_floor = min(n_u, n_o, len(pool) // 2)
    if n_floor < 1:
        diagnostics["warnings"].append({"kind": "no_floor", "message": (
            f"no noise floor: it needs at least 2 oracles to score against, {len(pool)} "
            "available; without it the scores cannot be read against a perfect method's")})
    else:
        floor_ids = pool[:2 * n_floor]
        floor_m = oracle_margins(floor_ids)
        floor = summarize(noise_floor(floor_m, n_per_side=n_floor, seed=seed, **klom_kwargs),
                          **groups)
        record["noise_floor"] = {"n_per_side": n_floor, "oracle_ids": floor_ids,
                                 **{g: {"p95": floor[g]["p95"], "mean": floor[g]["mean"]}
                                    for g in GROUPS}}
        reported = {o["id"] for o in diagnostics["outliers"]["oracle"]}
        diagnostics["warnings"] += outlier_warnings("noise-floor oracle", [
            far for far in outlier_models(floor_m, floor_ids) if far["id"] not in reported])
        if n_floor < max(n_u, n_o):
            u, o = m.unlearned[:n_floor], m.oracle[:n_floor]
            at = summarize(klom(unlearned=u, oracle=o, **klom_kwargs), **groups)
            at_ci = _p95_interval(u, o, groups, interval)
            record["matched"] = {
                "n_per_side": n_floor, "model_ids": m.model_ids[:n_floor],
                "oracle_ids": m.oracle_ids[:n_floor],
                **{g: {"p95": at[g]["p95"], "p95_low": at_ci[g]["low"],
                       "p95_high": at_ci[g]["high"]} for g in GROUPS}}
    record["diagnostics"] = diagnostics
    record["klom"] = settings
    record["interval"] = {"level": float(level), "n_splits": int(n_splits), "seed": int(seed),
                          "covers": INTERVAL_COVERS}
    record.update(seed=int(seed), model_ids=m.model_ids, oracle_ids=m.oracle_ids)
    return record


#: What the intervals of a record cover, in words (also in the record and under tables).
INTERVAL_COVERS = ("the expected 95th percentile at this N per side, over the randomness of "
                   "training the models (the examples are fixed)")


def _p95_interval(unlearned, oracle, groups, settings) -> dict:
    if min(len(unlearned), len(oracle)) < MIN_MODELS:  # too few models to split in halves
        return {g: {"low": float("nan"), "high": float("nan"), "sd": float("nan")}
                for g in GROUPS}
    return p95_interval(unlearned=unlearned, oracle=oracle, **groups, **settings)


def jsonable(x: Any) -> Any:
    """A copy of ``x`` (records, summaries) that ``json.dumps(..., allow_nan=False)`` accepts:
    numpy scalars and arrays become Python numbers and lists, nan and infinities ``None``."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def score_many(store: StoreLike, dataset: DatasetLike, forget_sets: Iterable[int],
               methods: Iterable[str], *, progress: bool = True, **kwargs: Any) -> list[Record]:
    """:func:`score` for every (forget set, method) pair; a list of records."""
    from tqdm.auto import tqdm

    store, data = _open(store), _dataset(dataset, kwargs.pop("root", None))
    pairs = [(k, m) for k in forget_sets for m in methods]
    return [score(store, data, k, m, **kwargs)
            for k, m in tqdm(pairs, desc="scoring", disable=not progress)]


def _number(x) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{x:.2f}"


def _with_ci(group: dict) -> str:
    """``p95 [low, high]``; the interval left out where there is none (nan, or None as read
    back from JSON)."""
    low, high = group.get("p95_low"), group.get("p95_high")
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return _number(group["p95"])
    return f"{group['p95']:.2f} [{group['p95_low']:.2f}, {group['p95_high']:.2f}]"


def _setting(record) -> tuple:
    """The estimator settings that make two records comparable."""
    k = record["klom"]
    return (k["direction"], k["variant"], k["bins"], k["eps"], tuple(k["clip"]))


def _short(setting) -> str:
    direction, variant, bins = setting[:3]
    return f"KL({direction.replace('||', ' || ')}), {variant}, {bins} bins"


def _settings_line(records) -> str:
    settings = {_setting(r) for r in records}
    text = "; ".join(_short(x) for x in sorted(settings))
    levels = sorted({r.get("interval", {}).get("level", 0.95) for r in records})
    level = "/".join(f"{100 * x:g}%" for x in levels)
    return (f"KLOM per example, 95th percentile per group [{level} interval]; {text}"
            + ("  (!) records with different settings: compare rows of one setting only"
               if len(settings) > 1 else ""))


def results_table(records: Iterable[Record]) -> ResultsTable:
    """A plain-text table of records from :func:`score` (HTML in a notebook).

    Per forget set: one row per method (the 95th percentile of each group with its interval,
    ``N`` per side, accuracies; for forget sets under 100 examples also the forget mean and
    the count of forget examples above the retain 99th percentile), a row per method rescored
    at the noise floor's ``N`` where that is smaller, and the noise floor labelled with its
    ``N``. Below: what the intervals cover and every diagnostic warning.
    """
    records = list(records)
    if not records:
        raise ValueError("results_table needs at least one record")
    small = any(r["forget_size"] < SMALL_FORGET for r in records)
    mixed = len({_setting(r) for r in records}) > 1
    header = (["forget set", "method", "N/side", "forget p95 [CI]"]
              + (["forget mean", "forget > retain p99"] if small else [])
              + ["retain p95 [CI]", "validation p95 [CI]", "acc forget/retain/test"])
    blank = [""] * (2 if small else 0)
    by_set: dict[tuple, list[Record]] = {}
    for r in records:  # rows grouped by forget set, in order of first appearance
        by_set.setdefault((r["dataset"], r["forget_set"]), []).append(r)
    rows = []
    for group in by_set.values():
        name = f"{group[0]['forget_set']} (n={group[0]['forget_size']})"
        for r in group:
            acc = r.get("accuracy")
            n = (str(r["n_unlearned"]) if r["n_unlearned"] == r["n_oracles"]
                 else f"{r['n_unlearned']}/{r['n_oracles']} (!)")
            extra = ([f"{r['forget']['mean']:.2f}",
                      f"{r['forget'].get('above_retain_p99', 0)} of {r['forget_size']}"]
                     if small else [])
            method = r["method"] + (f" ({_short(_setting(r))})" if mixed else "")
            rows.append([name, method, n, _with_ci(r["forget"])] + extra
                        + [_with_ci(r["retain"]), _with_ci(r["validation"])]
                        + [f"{acc['forget']:.3f}/{acc['retain']:.3f}/{acc['test']:.3f}"
                           if acc else "-"])
        for r in group:
            if r.get("matched"):
                at = r["matched"]
                method = r["method"] + (f" ({_short(_setting(r))})" if mixed else "")
                rows.append([name, f"{method} (rescored)", str(at["n_per_side"]),
                             _with_ci(at["forget"])] + blank
                            + [_with_ci(at["retain"]), _with_ci(at["validation"]), ""])
        floors: dict[tuple, Record] = {}  # one row per N and estimator setting
        for r in group:
            if r.get("noise_floor"):
                floors.setdefault((r["noise_floor"]["n_per_side"], _setting(r)), r["noise_floor"])
        for (n, setting), floor in sorted(floors.items(), key=lambda kv: -kv[0][0]):
            label = "noise floor" + (f" ({_short(setting)})" if mixed else "")
            rows.append([name, label, str(n), _number(floor["forget"]["p95"])] + blank
                        + [_number(floor[g]["p95"]) for g in ("retain", "validation")] + [""])
    notes = [f"[CI]: interval for {INTERVAL_COVERS}. Compare methods only at equal N.",
             "noise floor: oracles scored against disjoint oracles at the N shown (a perfect "
             "method's score at that N); (rescored): the method at the floor's N."]
    if small:
        notes.append(f"forget sets under {SMALL_FORGET} examples: the p95 rests on the few "
                     "largest scores; read it with the forget mean and the count above the "
                     "retain p99.")
    seen: dict[str, list[str]] = {}
    for r in records:
        for w in r.get("diagnostics", {}).get("warnings", []):
            if w["kind"] != "small_forget":
                seen.setdefault(w["message"], []).append(f"{r['forget_set']}/{r['method']}")
    notes += [f"(!) [{', '.join(where)}] {message}" for message, where in seen.items()]
    return ResultsTable.build(_settings_line(records), header, rows, notes)


class ResultsTable(str):
    """The plain-text table of :func:`results_table` (a ``str``: print it, write it to a file);
    in a notebook it shows as an HTML table with the same title, cells and notes."""

    heading: str
    header: list
    rows: list
    notes: list

    @classmethod
    def build(cls, title: str, header: list, rows: list, notes: list) -> "ResultsTable":
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

        def line(cells):
            return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

        text = "\n".join([title, "", line(header), line(["-" * w for w in widths]),
                          *(line(r) for r in rows), "", *notes])
        table = cls(text)
        table.heading, table.header, table.rows, table.notes = title, header, rows, notes
        return table

    def _repr_html_(self) -> str:
        from html import escape

        head = "".join(f"<th>{escape(str(h))}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>"
                       for row in self.rows)
        notes = "".join(f"<li>{escape(n)}</li>" for n in self.notes)
        return (f'<div class="klom-results"><p><strong>{escape(self.heading)}</strong></p>'
                f'<div style="overflow-x:auto"><table><thead><tr>{head}</tr></thead>'
                f'<tbody>{body}</tbody></table></div>'
                f'<ul style="font-size:smaller">{notes}</ul></div>')
