"""A fair comparison of unlearning methods: settings chosen by a declared protocol that never
reads the scoring oracles of the forget set it reports, every method scored alike, with cost.

For each method, :func:`compare` tries up to ``budget`` settings (the defaults first, then
draws from the method's declared search space, :func:`~klom_utils.unlearning.configs.
trial_configs`) on every forget set, unlearning what the store lacks (claimed per model,
resumable: a rerun does no work). Each trial is scored on each forget set against that set's
scoring oracles (the *selection score*, :data:`SELECTION`). Then, per reported forget set:

- ``"leave-one-out"`` (the default): the setting with the best mean selection score over the
  *other* forget sets; the reported set's scoring oracles are never read to choose it;
- ``"fixed"``: the method's defaults, no search (the built-in DIGITS defaults were themselves
  chosen by leave-one-out on DIGITS forget sets 1-3, by majority: ``fixed`` on those sets is
  not free of their oracles; report leave-one-out);
- ``"oracle-tuned"``: the best on the reported set's own scoring oracles, as published tables
  do: labelled :data:`OPTIMISTIC` everywhere.

The chosen setting is scored in full (:func:`klom_utils.evaluate.score`: interval, noise floor
at the same N, diagnostics), with accuracies on forget, retain and validation and their gaps
to the oracles', and its cost: unlearning seconds per model, measured when it ran, and as a
fraction of training one model of the full models' recipe, measured on the same device (the
same GPU model or processor, by name).
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ._typing import PathLike, Record
from .data import DatasetLike, as_dataset
from .devices import device_label, resolve_device
from .evaluate import GROUPS, accuracies, score
from .files import atomic_write
from .forget_sets import forget_indices
from .layout import (
    COST_FILE,
    DATAMODEL_FILE,
    HELD_OUT_ORACLE_START,
    UNLEARN_RECORD,
    datamodel_folder,
    full_models_folder,
    oracle_folder,
    unlearned_folder,
)
from .lenses import parse_metrics
from .metric import klom, summarize
from .oracles import held_out_oracle_ids, scoring_oracle_ids
from .progress import progress_bar
from .report import LENS_COLUMNS, write_comparison
from .store import RecordMismatchError, Store, StoreLike, as_store, folder_margins
from .train import default_config as default_train_config
from .train import recorded_config, train_models
from .uncertainty import MIN_MODELS, check_interval_settings
from .unlearning import get_method, unlearn_store
from .unlearning.configs import config_id, default_config, search_space, trial_configs

PROTOCOLS = ("leave-one-out", "fixed", "oracle-tuned")
#: The label of every result chosen on the scoring oracles it is reported against.
OPTIMISTIC = "optimistic: tuned on the scoring oracles"
#: Accuracy the chosen settings must keep: test accuracy within this of the oracles'.
ACCURACY_TOLERANCE = 0.03
#: The forget sets whose scoring oracles chose the built-in defaults, per dataset.
DEFAULTS_CHOSEN_ON = {"DIGITS": (1, 2, 3)}
#: The label of results on those sets that report a method's tuned defaults (``fixed``, or
#: leave-one-out choosing them): the defaults were chosen with that set's oracles among others.
DEFAULTS_OPTIMISTIC = "optimistic: the defaults were chosen on this set's scoring oracles"
#: The selection score, in words (lower is better).
SELECTION = ("mean over forget, retain and validation of the 95th percentile of KLOM (N per side "
             "as scored), among the settings whose mean test accuracy is within {tol:g} of the "
             "oracles' on every forget set used to choose (all settings when none is)")


@dataclass
class Trial:
    """One setting of one method, run and scored on every forget set."""

    method: str
    config: dict
    folder_name: str
    scores: dict = field(default_factory=dict)  # forget set -> selection record

    def selection(self, sets: Iterable[int], tolerance: float) -> tuple:
        """Sort key over ``sets``: (accuracy outside the tolerance somewhere, mean score)."""
        sets = list(sets)
        bad = any(not self.scores[k]["accuracy_gap"]["validation"] <= tolerance for k in sets)
        score = float(np.mean([self.scores[k]["score"] for k in sets]))
        return (bad, score if np.isfinite(score) else np.inf)  # a diverged setting never wins


def compare(dataset: DatasetLike, store: StoreLike, forget_sets: Sequence[int],
            methods: Sequence[str], *, protocol: str = "leave-one-out", budget: int = 4,
            search: Mapping[str, Mapping[str, Sequence]] | None = None,
            model_ids: Iterable[int] | None = None,
            accuracy_tolerance: float = ACCURACY_TOLERANCE, seed: int = 0, device: str = "auto",
            level: float = 0.95, n_splits: int = 25, cost_models: int | None = None,
            metrics: str | Sequence[str] | None = None, out: PathLike | None = None,
            progress: bool | None = True, root: PathLike | None = None) -> Record:
    """Compare ``methods`` on ``forget_sets`` of ``store`` under ``protocol`` (see the module
    docstring); returns ``{"rows", "summary", "choices", "settings"}`` and, with ``out``,
    writes the table, the summary and the figures there
    (:func:`klom_utils.report.write_comparison`).

    ``budget``: settings tried per method (the defaults among them); ``search``: per method,
    ``{key: [values]}`` replacing keys of its declared space; ``model_ids``: the full models
    to unlearn (default every complete one below 1000); ``cost_models``: how many models trained
    at once measure the training cost that relative costs divide by (default: a DIGITS stack
    of 100, else 1; 0: no relative cost): the full models' own cost record when that many
    were trained at once on this device, else trained once in a temporary store;
    ``metrics``: lenses besides KLOM for the reported rows (``"all"`` or among ``ulira``,
    ``accuracy``, ``ks``; see :func:`klom_utils.lenses.compute_lenses`): columns ``ulira``,
    ``ks_p95``, ``tow`` and others, each with interval and null. Settings are chosen by KLOM
    alone.
    """
    start = time.perf_counter()
    store, data = as_store(store), as_dataset(dataset, root)
    sets, methods, ids = _checked(store, data, forget_sets, methods, protocol, budget,
                                  accuracy_tolerance, model_ids)
    search = dict(search or {})
    unknown = sorted(set(search) - set(methods))
    if unknown:
        raise ValueError(f"search given for {unknown[0]!r}, which is not among the methods "
                         f"compared ({', '.join(methods)})")
    check_interval_settings(level, n_splits)
    metrics = parse_metrics(metrics)
    if cost_models is not None and (isinstance(cost_models, bool)
                                    or not isinstance(cost_models, int) or cost_models < 0):
        raise ValueError(f"cost_models must be a non-negative integer or None, got "
                         f"{cost_models!r}")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ValueError(f"out {str(out)!r} is a file; give a folder for the comparison's files")
    tried = 1 if protocol == "fixed" else budget
    trials = {m: [Trial(m, c, "") for c in trial_configs(
        m, data.name, tried, seed=seed, search=search.get(m))] for m in methods}
    _check_prerequisites(store, data, sets, trials, ids)
    for ts in trials.values():  # folder names (and their records) before any work
        for t in ts:
            t.folder_name = _folder_name(store, data.name, sets, t, seed)
    dev = resolve_device(device)
    bar = progress_bar(sum(len(t) for t in trials.values()) * len(sets), "compare", progress,
                       unit="run")
    oracles = {k: _oracle_side(store, data, k, ids) for k in sets}
    for ts in trials.values():
        for t in ts:
            for k in sets:
                _run_trial(store, data, k, t, ids, seed, dev, oracles[k])
                bar.update(1)
    bar.close()
    reference = _training_cost(store, data, dev, cost_models)
    choices = {m: {k: _choose(trials[m], sets, k, protocol, accuracy_tolerance) for k in sets}
               for m in methods}
    rows, records = [], []
    for m in methods:
        for k in sets:
            choice = choices[m][k]
            record = score(store, data, k, choice["folder"], model_ids=ids, level=level,
                           n_splits=n_splits, seed=seed, metrics=metrics)
            records.append({**record, "method": m, "folder": choice["folder"]})
            rows += _rows(record, m, k, protocol, choice, oracles[k], reference)
    unmatched = sorted({r["method"] for r in rows if r["seconds_per_model"] is not None
                        and r["relative_cost"] is None})
    if unmatched and reference is not None:
        warnings.warn(f"no relative cost for {', '.join(unmatched)}: their unlearning was timed "
                      f"on another device than {reference['device']!r} (or recorded by an older "
                      "version as only 'cpu' or 'cuda'); unlearn them again here to measure it",
                      stacklevel=2)
    # with one forget set leave-one-out has nothing to choose on: its alternative is "fixed"
    honest = "leave-one-out" if len(sets) > 1 else "fixed"
    alternatives = {p: {m: {k: _choose(trials[m], sets, k, p, accuracy_tolerance)["reported"]
                            for k in sets} for m in methods}
                    for p in (honest, "oracle-tuned")}
    result: Record = {
        "dataset": data.name, "forget_sets": sets, "methods": methods, "protocol": protocol,
        "label": _result_label(protocol, rows),
        "selection": SELECTION.format(tol=accuracy_tolerance), "budget": int(tried),
        "accuracy_tolerance": float(accuracy_tolerance), "model_ids": ids, "seed": int(seed),
        "training_cost": reference, "rows": rows, "records": records, "choices": choices,
        "protocols": alternatives, "trials": {m: [_trial_record(t) for t in ts]
                                              for m, ts in trials.items()},
        "seconds": time.perf_counter() - start}
    if out is not None:
        result["files"] = write_comparison(result, out)
    return result


def _checked(store: Store, data: Any, forget_sets: Sequence[int], methods: Sequence[str],
             protocol: str, budget: int, tolerance: float,
             model_ids: Iterable[int] | None) -> tuple:
    """The forget sets, methods and model ids, checked before anything is written."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive integer (settings tried per method), "
                         f"got {budget!r}")
    if not (isinstance(tolerance, (int, float)) and 0 <= tolerance <= 1):
        raise ValueError(f"accuracy_tolerance must be a number in [0, 1], got {tolerance!r}")
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise ValueError("name at least one method to compare")
    for m in methods:
        get_method(m)  # unknown: "unknown method ... expected one of ..."
    sets = sorted({int(k) for k in forget_sets})
    if not sets:
        raise ValueError("name at least one forget set to compare on")
    if protocol == "leave-one-out" and len(sets) < 2:
        raise ValueError(f"the leave-one-out protocol chooses each forget set's settings on the "
                         f"others: it needs at least 2 forget sets, got {sets}; use --protocol "
                         "fixed for one")
    n_oracles = {}
    for k in sets:
        forget_indices(store, data, k)  # an unknown set: FileNotFoundError naming it
        folder = oracle_folder(data.name, k)
        have = scoring_oracle_ids(store, data.name, k) if store.path(folder).is_dir() else []
        if len(have) < 2 * MIN_MODELS:
            raise ValueError(f"forget set {k} has {len(have)} scoring oracles in {folder!r} "
                             f"(ids below {HELD_OUT_ORACLE_START}); a comparison needs at least "
                             f"{2 * MIN_MODELS}: N to score against and N others for the noise "
                             f"floor at the same N, N >= {MIN_MODELS}")
        n_oracles[k] = len(have)
    full = full_models_folder(data.name)
    complete = store.complete_model_ids(full) if store.path(full).is_dir() else []
    ids = sorted({int(i) for i in (model_ids if model_ids is not None else
                                   [i for i in complete if i < HELD_OUT_ORACLE_START])})
    missing = sorted(set(ids) - set(complete))
    if missing:
        raise ValueError(f"{full!r} lacks the full models {missing[:10]} asked for "
                         f"({len(complete)} complete there)")
    if len(ids) < MIN_MODELS:
        where = "given" if model_ids is not None else f"in {full!r}"
        raise ValueError(f"the comparison needs at least {MIN_MODELS} full models, got "
                         f"{len(ids)} ({where})")
    # N per side: every forget set scores N models against N oracles and keeps N others for
    # the noise floor at the same N
    n = min([len(ids)] + [count // 2 for count in n_oracles.values()])
    if n < len(ids):
        fewest = min(n_oracles, key=lambda k: n_oracles[k])
        warnings.warn(f"comparing at N = {n} models per side, not {len(ids)}: forget set {fewest} "
                      f"has {n_oracles[fewest]} scoring oracles, and each set needs 2N (N to "
                      f"score against, N others for the noise floor); {len(ids) - n} full "
                      f"models (ids {ids[n]} and up) are left out", stacklevel=3)
    return sets, methods, ids[:n]


def _check_prerequisites(store: Store, data: Any, sets: Sequence[int], trials: Mapping,
                         ids: Sequence[int]) -> None:
    """Every trial's settings against the models (``register_method(check=...)``), and what
    the methods need (held-out oracles, a datamodel), before anything is unlearned."""
    state_dict = store.state_dict(full_models_folder(data.name), ids[0])
    for m, ts in trials.items():
        spec = get_method(m)
        if spec.check is not None:
            for t in ts:
                spec.check(t.config, state_dict)
        for k in sets:
            if spec.needs_oracles and not held_out_oracle_ids(store, data.name, k):
                raise FileNotFoundError(
                    f"{m} needs held-out oracles of forget set {k} (ids >= "
                    f"{HELD_OUT_ORACLE_START} in {oracle_folder(data.name, k)!r}); train some "
                    "or leave the method out")
        path = store.path(f"{datamodel_folder(data.name)}/{DATAMODEL_FILE}")
        if spec.needs_datamodel and not path.is_file():
            raise FileNotFoundError(f"{m} needs a datamodel: none at {str(path)!r} (`klom "
                                    "datamodels` estimates one)")


def _folder_name(store: Store, dataset: str, sets: Sequence[int], trial: Trial,
                 seed: int) -> str:
    """The method's own folder for its defaults where it holds (or will hold) exactly those
    runs, else ``<method>.<hash>`` of the setting."""
    own = config_id(trial.method, {"config": trial.config, "seed": seed})
    if trial.config == default_config(trial.method, dataset):
        for k in sets:
            path = store.path(f"{unlearned_folder(dataset, trial.method, k)}/{UNLEARN_RECORD}")
            if path.is_file():
                record = json.loads(path.read_text())
                if record.get("config") != trial.config or record.get("seed") != seed:
                    return own
        return trial.method
    return own


def _oracle_side(store: Store, data: Any, k: int, ids: Sequence[int]) -> dict:
    """The scoring oracles of set ``k`` (as many as models are scored): ids, margins, and
    mean accuracy on forget, retain and validation, read once for every trial."""
    oracle_ids = scoring_oracle_ids(store, data.name, k)[:len(ids)]
    folder = oracle_folder(data.name, k)
    forget = forget_indices(store, data, k)
    acc = accuracies(store, folder, data, oracle_ids, forget)
    if acc is None:
        raise FileNotFoundError(f"{folder!r} holds margins only: comparing methods needs the "
                                "oracles' logits (for their accuracies)")
    return {"forget": acc["forget"], "retain": acc["retain"], "validation": acc["test"],
            "oracle_ids": oracle_ids, "folder": folder, "forget_indices": forget,
            "margins": folder_margins(store, folder, data, oracle_ids)}


def _run_trial(store: Store, data: Any, k: int, trial: Trial, ids: Sequence[int], seed: int,
               device: Any, oracles: dict) -> None:
    """Unlearn what the store lacks for ``trial`` on set ``k`` and score it for selection:
    KLOM against the set's scoring oracles and the validation accuracy's gap to theirs."""
    name = trial.folder_name
    try:
        run = unlearn_store(store, data, k, trial.method, ids, config=trial.config, name=name,
                            seed=seed, device=device, progress=False)
    except RecordMismatchError:  # the method's own folder was made otherwise (other oracles)
        if name != trial.method:
            raise
        name = trial.folder_name = config_id(trial.method, {"config": trial.config, "seed": seed})
        run = unlearn_store(store, data, k, trial.method, ids, config=trial.config, name=name,
                            seed=seed, device=device, progress=False)
    cost_path = store.path(f"{run['folder']}/{COST_FILE}")  # written by unlearn_store
    unlearned = folder_margins(store, run["folder"], data, ids)
    summary = summarize(klom(unlearned=unlearned, oracle=oracles["margins"]),
                        forget=oracles["forget_indices"], n_train=data.n_train)
    val = float((store.logits_of(run["folder"], "val", ids).argmax(-1)
                 == data.val_y.numpy()).mean())
    trial.scores[k] = {
        "score": float(np.mean([summary[g]["p95"] for g in GROUPS])),
        "p95": {g: summary[g]["p95"] for g in GROUPS},
        "accuracy": {"validation": val},
        "accuracy_gap": {"validation": abs(val - oracles["validation"])},
        "n_per_side": len(ids), "folder": name, "oracle_folder": oracles["folder"],
        "oracle_ids": oracles["oracle_ids"],
        "cost": json.loads(cost_path.read_text()) if cost_path.is_file() else None}


def _choose(trials: Sequence[Trial], sets: Sequence[int], k: int, protocol: str,
            tolerance: float) -> dict:
    """The trial reported on set ``k`` under ``protocol``, and the oracles that chose it."""
    on = {"fixed": [], "oracle-tuned": [k],
          "leave-one-out": [j for j in sets if j != k]}[protocol]
    best = trials[0] if not on else min(trials, key=lambda t: t.selection(on, tolerance))
    return {"folder": best.scores[k]["folder"], "config": best.config,
            "reported": best.scores[k],
            "chosen_on": [{"forget_set": j, "oracle_folder": best.scores[j]["oracle_folder"],
                           "oracle_ids": best.scores[j]["oracle_ids"]} for j in on],
            "selection_score": best.selection(on, tolerance)[1] if on else None}


def _training_cost(store: Store, data: Any, device: Any, n: int | None) -> Record | None:
    """Seconds to train one model of the recipe of the store's full models (the dataset's
    default where the store records none) on ``device``, kept in ``<store>/comparisons/``
    with the recipe and the device it was measured for: the full models' own cost record when
    ``n`` of them were trained at once on this device (``klom train`` writes it), else
    measured once by training ``n`` models in a temporary store."""
    n = (100 if data.name == "DIGITS" else 1) if n is None else int(n)
    if n == 0:
        return None
    full = full_models_folder(data.name)
    config = recorded_config(store, full, data.name)
    recorded = config is not None  # a Hub snapshot records none: the dataset's default
    if config is None:
        config = default_train_config(data.name)
    whose = "the full models' recipe" if recorded else "the dataset's default recipe"
    recipe = config.recorded()
    label = device_label(device)
    path = store.path(f"comparisons/{data.name}/training_cost.json")
    if path.is_file():
        known = json.loads(path.read_text())
        if (known.get("device"), known.get("n_models"), known.get("recipe")) == (label, n, recipe):
            return known
    trained = store.path(f"{full}/{COST_FILE}")
    own = json.loads(trained.read_text()) if trained.is_file() else {}
    if recorded and (own.get("device"), own.get("n_models"), own.get("at_once")) == (label, n, n):
        # all n trained in one stack on this device: what the measurement below would time
        seconds = own["seconds_per_model"] * n
        how = f"the train_models call that wrote the store's {n} full models"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            begin = time.perf_counter()
            train_models(data, tmp, range(n), config=config, device=device, progress=False)
            seconds, how = time.perf_counter() - begin, f"{n} models in a temporary store"
    known = {"seconds_per_model": seconds / n, "n_models": n, "device": label, "recipe": recipe,
             "what": f"training {n} {data.name} models of {whose} at once, divided by their "
                     f"number ({how})"}
    text = json.dumps(known, indent=2)
    atomic_write(path, lambda tmp_path: tmp_path.write_text(text))
    return known


def _rows(record: Record, method: str, k: int, protocol: str, choice: dict,
          oracle_acc: dict, reference: Record | None) -> list:
    """The table's rows of one method on one forget set: one per group."""
    cost = choice["reported"]["cost"]
    seconds = cost["seconds_per_model"] if cost else None
    relative = None
    if seconds is not None and reference and cost["device"] == reference["device"]:
        relative = seconds / reference["seconds_per_model"]  # measured on the same device
    acc = {"forget": record["accuracy"]["forget"], "retain": record["accuracy"]["retain"],
           "validation": record["accuracy"]["test"]}
    floor = record.get("noise_floor") or {}
    return [{
        "dataset": record["dataset"], "forget_set": k, "method": method, "group": g,
        "protocol": protocol, "label": _label(protocol, record["dataset"], k, method,
                                              choice["config"]),
        "p95": record[g]["p95"], "p95_low": record[g]["p95_low"],
        "p95_high": record[g]["p95_high"], "floor_p95": floor.get(g, {}).get("p95"),
        "floor_n_per_side": floor.get("n_per_side"), "n_per_side": record["n_per_side"],
        "direction": record["klom"]["direction"], "variant": record["klom"]["variant"],
        "bins": record["klom"]["bins"],
        "accuracy": acc[g], "oracle_accuracy": oracle_acc[g],
        "accuracy_gap": acc[g] - oracle_acc[g], "seconds_per_model": seconds,
        "relative_cost": relative, "settings": choice["config"], "folder": choice["folder"],
        "chosen_on": choice["chosen_on"], "warnings": [w["kind"] for w in
                                                       record["diagnostics"]["warnings"]],
        **lens_columns(record.get("metrics"), g),
    } for g in GROUPS]


def _label(protocol: str, dataset: str, k: int, method: str, config: Mapping) -> str:
    """The caveat of a row: oracle-tuned results, and a method's tuned defaults reported on a
    set whose oracles chose them (methods with nothing to tune carry none)."""
    if protocol == "oracle-tuned":
        return OPTIMISTIC
    tuned = (k in DEFAULTS_CHOSEN_ON.get(dataset, ()) and bool(search_space(method, dataset))
             and config == default_config(method, dataset))
    return DEFAULTS_OPTIMISTIC if tuned else ""


def _result_label(protocol: str, rows: Sequence[Record]) -> str:
    """The result's caveat: the protocol's, or which rows report defaults tuned on their set."""
    if protocol == "oracle-tuned":
        return OPTIMISTIC
    hit = {(r["method"], r["forget_set"]) for r in rows if r["label"]}
    if not hit:
        return ""
    sets = sorted({k for _, k in hit})
    return (f"{len(hit)} of {len({(r['method'], r['forget_set']) for r in rows})} results "
            f"report defaults tuned on their set's scoring oracles (sets "
            f"{', '.join(map(str, sets))}; their rows in the table say so)")


def lens_columns(lens: Record | None, group: str) -> Record:
    """The table's columns of the other lenses for one group (``None`` where not computed):
    U-LiRA and the KS p95 of the group, each with interval and null; ToW and the average gap
    of the whole record."""
    out: Record = dict.fromkeys(LENS_COLUMNS)
    ulira = ((lens or {}).get("ulira") or {}).get("groups")
    if ulira:
        e = ulira[group]
        out.update(ulira=e["value"], ulira_low=e["low"], ulira_high=e["high"],
                   ulira_null=e["null"])
    ks = (lens or {}).get("ks")
    if ks:
        e = ks["groups"][group]
        out.update(ks_p95=e["p95"], ks_p95_low=e["low"], ks_p95_high=e["high"],
                   ks_null=e["null"])
    acc = (lens or {}).get("accuracy")
    if acc:
        out.update(tow=acc["tow"]["value"], tow_null=acc["tow"]["null"],
                   average_gap=acc["average_gap"]["value"])
    return out



def _trial_record(trial: Trial) -> Record:
    return {"config": trial.config, "folder": trial.folder_name,
            "scores": {str(k): v for k, v in trial.scores.items()}}
