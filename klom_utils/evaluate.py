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
:mod:`klom_utils.oracles`) and are never used for scoring; neither are oracles that the scored
method recorded as used.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ._typing import ArrayLike, PathLike, Record
from .accuracy_gaps import model_accuracies
from .data import DatasetLike, SplitsLike, dataset_labels, dataset_name
from .diagnostics import diagnose, outlier_models, outlier_warnings
from .forget_sets import check_forget_indices, forget_indices
from .layout import (
    HELD_OUT_ORACLE_START,
    TRAIN_RECORD,
    forget_set_folder,
    full_models_folder,
    oracle_folder,
    recipe_name,
    unlearned_folder,
)
from .lenses import compute_lenses, klom_cap, parse_metrics, saturation_warnings
from .metric import klom, summarize
from .oracles import scoring_oracle_ids, used_oracle_ids
from .precomputed import oracle_margins_folder, precomputed_margins, train_width
from .progress import tqdm_class
from .store import Store, StoreLike, as_store, folder_margins
from .tables import jsonable, results_table
from .uncertainty import (
    INTERVAL_COVERS,
    MIN_MODELS,
    check_interval_settings,
    floor_split,
    noise_floor,
    p95_interval,
)

__all__ = ["GROUPS", "Margins", "accuracies", "do_nothing_klom", "jsonable", "klom_scores",
           "klom_settings", "load_margins", "recipe_differences", "results_table", "score",
           "score_arrays", "score_many"]

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


def load_margins(store: StoreLike, dataset: DatasetLike, forget_set: int, method: str, *,
                 model_ids: Iterable[int] | None = None, oracle_ids: Iterable[int] | None = None,
                 root: PathLike | None = None, augment: bool = False) -> Margins:
    """The :class:`Margins` of ``method`` for forget set ``k`` and of the oracles it is scored
    against, at equal numbers of models per side by default.

    ``model_ids``: default every complete model of the unlearned folder; ``oracle_ids``:
    default the ``N`` lowest of :func:`scoring_oracle_ids`, ``N`` = the number of unlearned
    models (where fewer oracles exist, ``N`` is their number and the ``N`` lowest unlearned
    ids are used, unless ``model_ids`` was given). Giving an oracle that the method used is an
    error. Images are never loaded (labels only where a folder holds logits, not margins).
    ``augment``: the augmented recipe's folders (``<D>_augmented``), against its own oracles.
    """
    store, data = as_store(store), dataset_labels(dataset, root)
    recipe = recipe_name(data.name, augment)
    folder = unlearned_folder(recipe, method, forget_set)
    if not store.path(folder).is_dir():
        raise FileNotFoundError(f"store {str(store.root)!r} has no models of method {method!r} "
                                f"for forget set {forget_set} ({folder!r}); run `klom unlearn` "
                                "first")
    given_models = model_ids is not None
    if model_ids is None:
        model_ids = store.readable_model_ids(folder)
    model_ids = sorted({int(i) for i in model_ids})
    if not model_ids:
        raise FileNotFoundError(f"{folder!r} holds no complete unlearned model")
    ofolder = oracle_folder(recipe, forget_set)
    if augment and not store.path(ofolder).is_dir():
        plain = oracle_folder(data.name, forget_set)
        have = (f"; the store's {plain!r} were trained without augmentation (augment: unlearned "
                "models True, oracles False) and are not scored against augmented models"
                if store.path(plain).is_dir() else "")
        raise FileNotFoundError(f"store {str(store.root)!r} has no oracles of the augmented recipe "
                                f"for forget set {forget_set} ({ofolder!r}){have}: train them with "
                                f"`klom train --dataset {data.name.lower()} --augment --forget-set "
                                f"{forget_set}`")
    if not store.path(ofolder).is_dir():
        raise FileNotFoundError(f"store {str(store.root)!r} has no oracles for forget set "
                                f"{forget_set} ({ofolder!r})")
    if oracle_ids is None:
        pool = scoring_oracle_ids(store, recipe, forget_set, method)
        n = len(model_ids) if given_models else min(len(model_ids), len(pool))
        model_ids, oracle_ids = model_ids[:n], pool[:n]
    else:
        oracle_ids = sorted({int(i) for i in oracle_ids})
        held = [i for i in oracle_ids if i >= HELD_OUT_ORACLE_START]
        if held:
            raise ValueError(f"oracle ids {held[:10]} are held out (ids >= "
                             f"{HELD_OUT_ORACLE_START}: kept for methods that train on "
                             "oracles) and are never scored against; give ids below "
                             f"{HELD_OUT_ORACLE_START}")
        used = sorted(set(oracle_ids) & set(used_oracle_ids(store, recipe, forget_set, method)))
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


def correct_matrix(store: Store, folder: str, data: SplitsLike,
                   model_ids: Sequence[int]) -> np.ndarray | None:
    """Per model (row) and example (train then val columns): True where the model's largest
    logit is the label's (the argmax prediction is right); None where the folder holds no
    logits (margins only, e.g. EasyDUB's dataset)."""
    return _right(store, folder, data, model_ids) if store.has_logits(folder) else None


def _right(store: Store, folder: str, data: SplitsLike, model_ids: Sequence[int]) -> np.ndarray:
    return np.concatenate([
        store.logits_of(folder, "train", model_ids).argmax(-1) == np.asarray(data.train_y),
        store.logits_of(folder, "val", model_ids).argmax(-1) == np.asarray(data.val_y)], axis=1)


def accuracies(store: Store, folder: str, data: SplitsLike, model_ids: Sequence[int],
               forget: ArrayLike, correct: np.ndarray | None = None) -> dict[str, float] | None:
    """Mean accuracy of the models ``model_ids`` of ``folder`` on forget, retain and test;
    None where the folder holds no logits (margins only, e.g. EasyDUB's dataset).
    ``correct``: their :func:`correct_matrix`, where already read."""
    if correct is None:
        correct = correct_matrix(store, folder, data, model_ids)
    if correct is None:
        return None
    acc = model_accuracies(correct, np.asarray(forget), data.n_train).mean(axis=0)
    return {"forget": float(acc[0]), "retain": float(acc[1]), "test": float(acc[2])}


def klom_settings(**klom_kwargs: Any) -> Record:
    """The settings of :func:`klom_utils.metric.klom` (its defaults, updated), JSON-ready."""
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
          allow_mixed_recipes: bool = False, augment: bool = False,
          metrics: str | Sequence[str] | None = None, **klom_kwargs: Any) -> Record:
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
    scores; plus ``fewer_oracles`` and ``no_floor``; all in ``warnings``); ``accuracy``
    (``forget``, ``retain``, ``test``: mean over the unlearned
    models); ``klom`` (the estimator's settings); ``interval`` (what the interval covers);
    ``method``, ``dataset``, ``forget_set``, ``forget_size``, ``model_ids``, ``oracle_ids``,
    ``seed``, ``seconds``; ``klom_cap`` (the largest score of this estimator at this ``N``: a
    group's p95 within 5% of it gets a ``saturated`` warning). ``metrics``: the lenses besides
    KLOM (``"all"``, or among ``"ulira"``, ``"accuracy"``, ``"ks"``; see
    :func:`klom_utils.lenses.compute_lenses`), under ``record["metrics"]``, each with interval and
    null at the floor's ``N``. ``klom_kwargs`` go to :func:`klom_utils.metric.klom` (``bins``,
    ``eps``, ``clip``, ``direction``, ``variant``). Full models and oracles trained with
    different recorded recipes are refused (:func:`recipe_differences`), or with
    ``allow_mixed_recipes`` scored with a ``mixed_recipes`` warning; so are models and oracles
    of two populations (:func:`check_populations`). ``augment``: the augmented recipe's
    models and oracles (``<D>_augmented`` folders; never the plain oracles).
    """
    start = time.perf_counter()
    klom_settings(**klom_kwargs)  # bad settings fail before anything is read
    check_interval_settings(level, n_splits)
    metrics = parse_metrics(metrics)
    store, data = as_store(store), dataset_labels(dataset, root)
    m = load_margins(store, data, forget_set, method, model_ids=model_ids, oracle_ids=oracle_ids,
                     augment=augment)
    recipe = recipe_name(data.name, augment)
    check_populations(store, m.folder, oracle_folder(recipe, forget_set), allow_mixed_recipes)
    have = {i: row for row, i in enumerate(m.oracle_ids)}

    def oracle_margins(ids):
        if all(i in have for i in ids):
            return m.oracle[[have[i] for i in ids]]
        return folder_margins(store, oracle_folder(recipe, forget_set), data, ids)

    mixed = recipe_differences(store, recipe, forget_set)
    if mixed and not allow_mixed_recipes:
        raise ValueError(f"the full models and the oracles of forget set {forget_set} were "
                         f"trained with different recipes ({'; '.join(mixed)}): their scores "
                         "would mix two kinds of models (allow_mixed_recipes=True, or "
                         "--allow-mixed-recipes, scores them anyway, with a warning)")
    ofolder = oracle_folder(recipe, forget_set)
    correct = None
    if "accuracy" in metrics and store.has_logits(m.folder) and store.has_logits(ofolder):
        rows: dict[int, np.ndarray] = {}  # per oracle: the floor's ids hold the scoring ones

        def oracle_right(ids: list) -> np.ndarray:
            missing = [i for i in ids if i not in rows]
            if missing:
                rows.update(zip(missing, _right(store, ofolder, data, missing)))
            return np.stack([rows[i] for i in ids])

        correct = (_right(store, m.folder, data, m.model_ids), oracle_right)
    record: Record = {"method": method, "dataset": recipe, "forget_set": int(forget_set)}
    record.update(_score(m, oracle_margins, level=level, n_splits=n_splits, seed=seed,
                         metrics=metrics, correct=correct, **klom_kwargs))
    if mixed:
        record["diagnostics"]["warnings"].append({"kind": "mixed_recipes", "message": (
            "full models and oracles were trained with different recipes: "
            + "; ".join(mixed))})
    available = len(store.readable_model_ids(m.folder))
    if model_ids is None and available > len(m.model_ids):
        record["diagnostics"]["warnings"].append({"kind": "fewer_oracles", "message": (
            f"only {len(m.oracle_ids)} oracles to score against: scored the "
            f"{len(m.model_ids)} lowest ids of the {available} unlearned models (train more "
            "oracles to use them all)")})
    record["accuracy"] = accuracies(store, m.folder, data, m.model_ids, m.forget,
                                    None if correct is None else correct[0])
    if "accuracy" in metrics and correct is None and record["accuracy"] is not None:
        record["diagnostics"]["warnings"].append({"kind": "accuracy_basis", "message": (
            f"{ofolder!r} holds margins only: the accuracy lens counts a positive margin as "
            "right on both sides (a lower bound), unlike record['accuracy'] (argmax of logits)")})
    if record["accuracy"] is None:
        record["diagnostics"]["warnings"].append({"kind": "no_accuracy", "message": (
            f"no accuracies: {m.folder!r} holds margins only, no logits")})
    populations = {store.population(f) for f in (m.folder, oracle_folder(recipe, forget_set))}
    if len(populations) > 1:
        record["diagnostics"]["warnings"].append({"kind": "mixed_populations", "message": (
            "unlearned models and oracles come from different populations: "
            + " vs ".join(sorted(populations)))})
    revisions = store.download_revisions([full_models_folder(recipe), m.folder, forget_set_folder(
        data.name), oracle_folder(recipe, forget_set)])
    if len(set(revisions.values())) > 1:
        record["diagnostics"]["warnings"].append({"kind": "mixed_revisions", "message": (
            "folders downloaded from different revisions: " + "; ".join(
                f"{f} at {r}" for f, r in sorted(revisions.items())))})
    record["seconds"] = time.perf_counter() - start
    return record


def check_populations(store: Store, models: str, oracles: str, allow_mixed: bool) -> None:
    """Refuse scoring the models of one population (EasyDUB's dataset, the KLOM-models
    layout) against the other's oracles, unless ``allow_mixed``."""
    a, b = store.population(models), store.population(oracles)
    if a != b and not allow_mixed:
        raise ValueError(f"{models!r} holds models of {a} but the oracles {oracles!r} are from "
                         f"{b}: scores would mix two populations (allow_mixed_recipes=True, or "
                         "--allow-mixed-recipes, scores them anyway, with a warning)")


#: Keys of a training record that differ between full models and oracles by design.
_GROUP_KEYS = ("group", "n_train_examples")


def recipe_differences(store: Store, dataset: str, forget_set: int) -> list[str]:
    """How the recorded training recipes of the full models and of the oracles of
    ``forget_set`` differ (``"key: full models x, oracles y"``); empty where they agree or a
    folder has no record (a Hub snapshot)."""
    records = []
    for folder in (full_models_folder(dataset), oracle_folder(dataset, forget_set)):
        path = f"{folder}/{TRAIN_RECORD}"
        records.append(store.read_json(path) if store.path(path).is_file() else None)
    full, oracles = records
    if full is None or oracles is None:
        return []
    return [f"{k}: full models {full.get(k)!r}, oracles {oracles.get(k)!r}"
            for k in sorted(set(full) | set(oracles))
            if k not in _GROUP_KEYS and full.get(k) != oracles.get(k)]


def score_arrays(unlearned: ArrayLike, oracle: ArrayLike, forget: ArrayLike, n_train: int, *,
                 level: float = 0.95, n_splits: int = 25, seed: int = 0,
                 metrics: str | Sequence[str] | None = None,
                 model_ids: Sequence[int] | None = None, oracle_ids: Sequence[int] | None = None,
                 **klom_kwargs: Any) -> Record:
    """:func:`score` for margins given as arrays, without a store.

    ``unlearned`` ``(N, n_examples)`` and ``oracle`` ``(M, n_examples)`` hold margins on the
    train examples then the validation ones; ``forget`` indexes the train examples, the first
    ``n_train`` columns. The unlearned models are scored against the first ``min(N, M)``
    oracle rows; every oracle row is in the pool of the noise floor (at ``N`` when ``M >= 2N``,
    else at ``M // 2`` with the method rescored there, labelled). No ``accuracy`` entry (no
    logits; ``metrics="accuracy"`` gives accuracies from the margins' signs). ``model_ids``,
    ``oracle_ids``: the ids of the rows, as the record names models (default: row numbers).
    """
    start = time.perf_counter()
    klom_settings(**klom_kwargs)
    check_interval_settings(level, n_splits)
    metrics = parse_metrics(metrics)
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
    u_ids, o_ids = (_row_ids(name, ids, len(a)) for name, ids, a in
                    (("model_ids", model_ids, u), ("oracle_ids", oracle_ids, o)))
    n = min(len(u), len(o))
    m = Margins(unlearned=u, oracle=o[:n], forget=np.unique(f), n_train=int(n_train),
                model_ids=u_ids, oracle_ids=o_ids[:n], folder="", oracle_pool=o_ids)
    row = {i: r for r, i in enumerate(o_ids)}
    record = _score(m, lambda ids: o[[row[i] for i in ids]], level=level, n_splits=n_splits,
                    seed=seed, metrics=metrics, **klom_kwargs)
    record["seconds"] = time.perf_counter() - start
    return record


def _row_ids(name: str, ids: Sequence[int] | None, rows: int) -> list[int]:
    """The ids naming ``rows`` rows: given (distinct integers, one per row) or row numbers."""
    if ids is None:
        return list(range(rows))
    out = [int(i) for i in ids]
    if len(out) != rows or len(set(out)) != rows:
        raise ValueError(f"{name} must name each of the {rows} rows once, got {len(out)} ids "
                         f"({len(set(out))} distinct)")
    return out


def _margin_rows(name: str, array: ArrayLike) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{name} margins must be a 2-D array (n_models, n_examples), "
                         f"got shape {a.shape}")
    return a


def _score(m: Margins, oracle_margins: Callable[[list], np.ndarray], *, level: float,
           n_splits: int, seed: int, metrics: Sequence[str] = ("klom",),
           correct: tuple[np.ndarray, Callable[[list], np.ndarray]] | None = None,
           **klom_kwargs: Any) -> Record:
    """The part of a record that needs only margins: scores, intervals, floor, diagnostics,
    the other lenses. ``correct``: the unlearned models' :func:`correct_matrix` and the
    oracles' by ids, for accuracies from logits (else from margins, labelled so)."""
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
    null = null_correct = None
    if n_floor < 1:
        diagnostics["warnings"].append({"kind": "no_floor", "message": (
            f"no noise floor: it needs at least 2 oracles to score against, {len(pool)} "
            "available; without it the scores cannot be read against a perfect method's")})
    else:
        floor_ids = pool[:2 * n_floor]
        floor_m = oracle_margins(floor_ids)
        floor = summarize(noise_floor(floor_m, n_per_side=n_floor, seed=seed, **klom_kwargs),
                          **groups)
        halves = floor_split(len(floor_m), n_floor, seed)
        null = floor_m[halves[0]], floor_m[halves[1]]
        if correct is not None and "accuracy" in metrics:
            floor_right = correct[1](floor_ids)
            null_correct = floor_right[halves[0]], floor_right[halves[1]]
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
    record["klom_cap"] = klom_cap(n_u, n_o, **klom_kwargs)
    diagnostics["warnings"] += saturation_warnings(
        "KLOM p95", {g: record[g]["p95"] for g in GROUPS}, record["klom_cap"])
    if len(metrics) > 1:
        sides = None if correct is None else (correct[0], correct[1](m.oracle_ids))
        record["metrics"] = compute_lenses(
            m.unlearned, m.oracle, **groups, null=null, metrics=metrics, level=level,
            n_splits=n_splits, seed=seed, correct=sides, null_correct=null_correct)
        diagnostics["warnings"] += record["metrics"]["warnings"]
    record["diagnostics"] = diagnostics
    record["klom"] = settings
    record["interval"] = {"level": float(level), "n_splits": int(n_splits), "seed": int(seed),
                          "covers": INTERVAL_COVERS}
    record.update(seed=int(seed), model_ids=m.model_ids, oracle_ids=m.oracle_ids)
    return record


def _p95_interval(unlearned, oracle, groups, settings) -> dict:
    if min(len(unlearned), len(oracle)) < MIN_MODELS:  # too few models to split in halves
        return {g: {"low": float("nan"), "high": float("nan"), "sd": float("nan")}
                for g in GROUPS}
    return p95_interval(unlearned=unlearned, oracle=oracle, **groups, **settings)


def score_many(store: StoreLike, dataset: DatasetLike, forget_sets: Iterable[int],
               methods: Iterable[str], *, progress: bool = True, **kwargs: Any) -> list[Record]:
    """:func:`score` for every (forget set, method) pair; a list of records."""
    store, data = as_store(store), dataset_labels(dataset, kwargs.pop("root", None))
    pairs = [(k, m) for k in forget_sets for m in methods]
    return [score(store, data, k, m, **kwargs)
            for k, m in tqdm_class()(pairs, desc="scoring", disable=not progress)]


def do_nothing_klom(store: StoreLike, dataset: str, forget_set: int, *,
                    labels: Any = None, n_models: int | None = None,
                    **score_kwargs: Any) -> Record:
    """The KLOM record of doing nothing (the full models scored as the unlearned ones) against
    the oracles of ``forget_set``, from precomputed files alone.

    ``dataset``: any spelling (``"living17"``, ``"CIFAR10"``; ``"CIFAR10_augmented"`` reads
    ``full_models/CIFAR10_augmented`` and the oracles of the same recipe,
    ``oracles/CIFAR10_augmented/forget_set_<k>`` from ``klom train --augment``: never the
    plain ones; forget sets are the base dataset's);
    ``n_models``: full models used (default all; ids below 1000 in each folder);
    ``score_kwargs`` go to :func:`klom_utils.evaluate.score_arrays` (``level``, ``n_splits``,
    ``seed``, KLOM settings). Returns its record, with ``method``, ``dataset``,
    ``forget_set``, ``folders``, ``model_ids`` and ``oracle_ids`` filled in.
    """
    store = as_store(store)
    augmented = str(dataset).lower().endswith("_augmented")
    base = dataset_name(str(dataset)[:-len("_augmented")] if augmented else dataset)
    recipe = f"{base}_augmented" if augmented else base
    full = full_models_folder(recipe)
    if not store.path(full).is_dir():
        raise FileNotFoundError(f"store {str(store.root)!r} has no {full!r}: download it "
                                f"(klom_utils.download([{full!r}]))")
    ofolder = oracle_margins_folder(store, recipe, forget_set)
    ids = [i for i in store.model_ids(full) if i < HELD_OUT_ORACLE_START]
    if n_models is not None:
        if isinstance(n_models, bool) or not isinstance(n_models, int) or n_models < 1:
            raise ValueError(f"n_models must be a positive integer or None, got {n_models!r}")
        ids = ids[:n_models]
    oracle_ids = [i for i in store.model_ids(ofolder) if i < HELD_OUT_ORACLE_START]
    unlearned = precomputed_margins(store, base, full, labels, ids)
    oracle = precomputed_margins(store, base, ofolder, labels, oracle_ids)
    n_train = train_width(store, base, full, labels, ids)
    forget = check_forget_indices(store.forget_set(base, forget_set), n_train)
    record = score_arrays(unlearned, oracle, forget, n_train, model_ids=ids,
                          oracle_ids=oracle_ids, **score_kwargs)
    record.update(method="do_nothing", dataset=recipe,
                  forget_set=int(forget_set), folders={"full": full, "oracles": ofolder},
                  accuracy=None)
    return record
