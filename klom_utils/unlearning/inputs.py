"""What an unlearning method gets (:class:`UnlearnData`) and what it may return instead of
models (:class:`Outputs`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..forget_sets import retain_mask


@dataclass
class UnlearnData:
    """What an unlearning method may use.

    ``forget_x``/``retain_x``: model inputs (already normalised), ``forget_y``/``retain_y``:
    int64 labels. ``oracle_forget_logits``/``oracle_retain_logits``: mean logits of held-out
    oracles on the same rows (only for methods registered with ``needs_oracles=True``).
    """

    forget_x: object
    forget_y: object
    retain_x: object
    retain_y: object
    oracle_forget_logits: object = None
    oracle_retain_logits: object = None
    datamodel_forget_shift: object = None
    datamodel_retain_shift: object = None
    train_x: object = None
    val_x: object = None
    datamodel_train_shift: object = None
    datamodel_val_shift: object = None

    def __post_init__(self):
        for part in ("forget", "retain"):
            x, y = getattr(self, f"{part}_x"), getattr(self, f"{part}_y")
            if x.shape[0] != y.shape[0]:
                raise ValueError(f"{part}_x has {x.shape[0]} rows but {part}_y has {y.shape[0]}")
            for name in (f"oracle_{part}_logits", f"datamodel_{part}_shift"):
                target = getattr(self, name)
                if target is not None and (target.ndim != 2 or target.shape[0] != y.shape[0]):
                    raise ValueError(f"{name} has shape {tuple(target.shape)}, "
                                     f"expected ({y.shape[0]}, n_classes)")
        if self.forget_y.shape[0] == 0:
            raise ValueError("the forget set is empty")

    @property
    def has_oracles(self) -> bool:
        return self.oracle_forget_logits is not None and self.oracle_retain_logits is not None

    @property
    def has_datamodel(self) -> bool:
        return (self.datamodel_forget_shift is not None
                and self.datamodel_retain_shift is not None)

    @property
    def device(self):
        return self.forget_x.device

    @classmethod
    def from_dataset(cls, dataset, forget, *, oracle_train_logits=None, datamodel_shift=None,
                     device=None):
        """Split a :class:`~klom_utils.data.TensorDataset`'s train split by ``forget``.

        ``oracle_train_logits``: (n_train, n_classes) mean logits of held-out oracles.
        ``datamodel_shift``: (n_train + n_val, n_classes) predicted change of the logits when
        the forget set leaves training (:func:`klom_utils.datamodels.forget_shift`); with it
        the data also carries every input (``train_x``, ``val_x``) and the shift of each split.
        """

        keep = torch.as_tensor(retain_mask(dataset.n_train, forget))
        forget = torch.as_tensor(np.asarray(forget), dtype=torch.long)
        x = dataset.normalize(dataset.train_x, device=device)
        y = dataset.train_y.to(x.device)
        targets = {}
        if oracle_train_logits is not None:
            t = torch.as_tensor(oracle_train_logits, dtype=torch.float32).to(x.device)
            if t.shape[0] != dataset.n_train:
                raise ValueError(f"oracle_train_logits has {t.shape[0]} rows, expected "
                                 f"{dataset.n_train} (the train split)")
            targets = {"oracle_forget_logits": t[forget.to(x.device)],
                       "oracle_retain_logits": t[keep.to(x.device)]}
        if datamodel_shift is not None:
            d = torch.as_tensor(np.asarray(datamodel_shift), dtype=torch.float32).to(x.device)
            n = dataset.n_train + dataset.n_val
            if d.ndim != 2 or d.shape[0] != n:
                raise ValueError(f"datamodel_shift has shape {tuple(d.shape)}, expected "
                                 f"({n}, n_classes): train then validation examples")
            train_shift = d[:dataset.n_train]
            targets.update(datamodel_forget_shift=train_shift[forget.to(x.device)],
                           datamodel_retain_shift=train_shift[keep.to(x.device)],
                           train_x=x, val_x=dataset.normalize(dataset.val_x, device=device),
                           datamodel_train_shift=train_shift,
                           datamodel_val_shift=d[dataset.n_train:])
        keep = keep.to(x.device)
        return cls(forget_x=x[forget.to(x.device)], forget_y=y[forget.to(x.device)],
                   retain_x=x[keep], retain_y=y[keep], **targets)


@dataclass
class Outputs:
    """What a method returns instead of a model when it produces the unlearned models'
    outputs directly: logits on the train split and on the validation split (float32)."""

    train_logits: Any
    val_logits: Any
