"""The harness checks what a method's fit returns (check_fit_result), and the public field-transfer hook of
CTRModel (transfer_fields) with its old name _transfer_fields still working for existing plugins."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from leanrec.errors import LeanrecError, PluginError
from leanrec.methods import FitResult, check_fit_result, field_specs
from leanrec.nn import CTRModel, FieldPairWeights, field_columns
from leanrec.testing import tiny_dataset

DATA = tiny_dataset(n=100)
NAMES = [f.name for f in DATA.fields]


class _Pool(CTRModel):
    def interact(self, feats):
        return feats.emb.sum(dim=(1, 2))

    def transfer_fields(self, keep, old_dims):
        pass


def _model(columns=None) -> CTRModel:
    specs = field_specs(DATA)
    if columns is None:
        return _Pool(specs, 2)
    return _Pool([specs[c] for c in columns], 2).use_columns(columns)


def _check(**fields):
    return check_fit_result(FitResult(**{"model": _model(), **fields}), DATA, "m")


def test_valid_results_pass_unchanged():
    r = FitResult(model=_model([0, 2]), selected_fields=[NAMES[2], NAMES[0]], field_dims={NAMES[0]: 2, NAMES[2]: 0},
                  field_scores={n: float(i) for i, n in enumerate(NAMES)}, extra={"keep_ratio": 0.25})
    assert check_fit_result(r, DATA, "m", family="selector") is r
    assert _check() is not None  # everything optional but the model
    wrapped = nn.Sequential(_model())  # not a CTRModel: what it reads cannot be checked, and is not
    assert check_fit_result(FitResult(model=wrapped, selected_fields=[NAMES[0]]), DATA, "m").model is wrapped


@pytest.mark.parametrize("result, expected", [
    (_model(), r"fit\(\) returned a _Pool; expected a leanrec.methods.FitResult \(wrap the model"),
    (None, "returned a NoneType; expected a leanrec.methods.FitResult"),
    (FitResult(model="not a model"), r"FitResult\(model=<str>\); expected the serving model"),
])
def test_wrong_return_types_say_what_was_expected(result, expected):
    with pytest.raises(PluginError, match=expected):
        check_fit_result(result, DATA, "my-method")


@pytest.mark.parametrize("fields, expected", [
    (dict(selected_fields=["nope", NAMES[0]]), r"selected_fields naming fields the dataset does not have: \['nope'\]"),
    (dict(selected_fields=NAMES[0]), "expected a list of field names"),
    (dict(selected_fields=[]), "expected a non-empty list of distinct names"),
    (dict(selected_fields=[NAMES[0], NAMES[0]]), "distinct"),
    (dict(selected_fields=NAMES[:2]), "but the serving model reads the fields"),  # the model keeps all fields
    (dict(field_dims={NAMES[0]: -1}), "not ints >= 0"),
    (dict(field_dims={NAMES[0]: 2.5}), "not ints >= 0"),
    (dict(field_dims={NAMES[0]: True}), "not ints >= 0"),
    (dict(field_dims={"nope": 2}), r"field_dims for fields that are not kept: \['nope'\]"),
    (dict(field_dims=[2, 2]), "expected a dict"),
    (dict(field_scores={"nope": 1.0}), "field_scores for fields the dataset does not have"),
    (dict(field_scores={NAMES[0]: "high"}), "not numbers"),
    (dict(extra=[1, 2]), "expected a dict"),
])
def test_bad_fields_are_refused_with_what_was_expected(fields, expected):
    with pytest.raises(PluginError, match=expected):
        _check(**fields)


def test_field_dims_only_for_kept_fields():
    r = FitResult(model=_model([1]), selected_fields=[NAMES[1]], field_dims={NAMES[0]: 2})
    with pytest.raises(PluginError, match=rf"not kept: \['{NAMES[0]}'\]; kept fields: \['{NAMES[1]}'\]"):
        check_fit_result(r, DATA, "m")


def test_selector_family_needs_selected_fields_and_keep_ratio():
    with pytest.raises(PluginError, match="no selected_fields; a method of family 'selector'"):
        check_fit_result(FitResult(model=_model()), DATA, "m", family="selector")
    r = FitResult(model=_model([0]), selected_fields=[NAMES[0]])
    with pytest.raises(PluginError, match=r"no extra\['keep_ratio'\]"):
        check_fit_result(r, DATA, "m", family="selector")
    assert check_fit_result(r, DATA, "m", family="pruning") is r


def test_errors_are_leanrec_errors_naming_the_method():
    with pytest.raises(LeanrecError, match="^method 'gated-fm': fit"):
        check_fit_result(object(), DATA, "gated-fm")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(range(len(NAMES))), min_size=1, unique=True),
       st.lists(st.sampled_from(range(len(NAMES))), min_size=1, unique=True))
def test_selected_fields_must_match_what_the_model_reads(columns, claimed):
    r = FitResult(model=_model(sorted(columns)), selected_fields=[NAMES[c] for c in claimed])
    if set(columns) == set(claimed):
        assert check_fit_result(r, DATA, "m") is r
    else:
        with pytest.raises(PluginError, match="the serving model reads"):
            check_fit_result(r, DATA, "m")


# ---- transfer_fields: the public name, and the old one kept as an alias ---------------------------------
class _Concat(CTRModel):
    """A linear layer over the concatenated embeddings, sliced by drop_fields (new-style override)."""

    supports_mixed_dims = True

    def __init__(self, fields, dims):
        super().__init__(fields, dims)
        self.out = nn.Linear(self.embedding.output_dim, 1)

    def interact(self, feats):
        emb = feats.emb.flatten(1) if feats.emb.dim() == 3 else feats.emb
        return self.out(emb).squeeze(-1)

    def transfer_fields(self, keep, old_dims):
        cols = field_columns(old_dims, keep)
        new = nn.Linear(len(cols), 1)
        with torch.no_grad():
            new.weight.copy_(self.out.weight[:, cols])
            new.bias.copy_(self.out.bias)
        self.out = new


class _LegacyPairs(CTRModel):
    """An old plugin's model: overrides the old private name only."""

    def __init__(self, fields, dim=3):
        super().__init__(fields, dim)
        self.pairs = FieldPairWeights(self.num_fields)

    def interact(self, feats):
        return self.pairs(feats.emb)

    def _transfer_fields(self, keep, old_dims):
        self.pairs.select(keep)


class _LegacyChild(_Concat):
    """An old plugin subclassing a new-style model, extending it through the old name and super()."""

    calls = 0

    def _transfer_fields(self, keep, old_dims):
        super()._transfer_fields(keep, old_dims)
        type(self).calls += 1


class _NewChildOfLegacy(_LegacyPairs):
    calls = 0

    def transfer_fields(self, keep, old_dims):
        super().transfer_fields(keep, old_dims)
        type(self).calls += 1


def _masked_equals_dropped(model: CTRModel, keep: list[int]) -> bool:
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    X = torch.as_tensor(DATA.train.X)
    mask = torch.zeros(model.num_fields)
    mask[keep] = 1.0
    with torch.no_grad():
        return torch.allclose(model.drop_fields(keep)(X), model(X, field_weights=mask), atol=1e-5)


@pytest.mark.parametrize("make", [
    lambda s: _Concat(s, [2, 3, 1, 2, 4, 2, 3, 1][:len(s)]),
    lambda s: _LegacyPairs(s),
    lambda s: _LegacyChild(s, [2] * len(s)),
    lambda s: _NewChildOfLegacy(s),
])
def test_drop_fields_uses_whichever_name_the_model_overrides(make):
    model = make(field_specs(DATA))
    before = getattr(type(model), "calls", None)
    assert _masked_equals_dropped(model, [0, 2, 3])
    if before is not None:
        assert type(model).calls == before + 1  # the subclass's own override ran, once


def test_both_names_are_the_same_function_in_every_class():
    for cls in (CTRModel, _Pool, _Concat, _LegacyPairs, _LegacyChild, _NewChildOfLegacy):
        assert cls.transfer_fields is cls._transfer_fields, cls


def test_a_model_without_transfer_fields_cannot_drop_fields():
    class NoTransfer(CTRModel):
        def interact(self, feats):
            return feats.emb.sum(dim=(1, 2))

    with pytest.raises(NotImplementedError, match="does not implement transfer_fields"):
        NoTransfer(field_specs(DATA), 2).drop_fields([0])


@pytest.mark.parametrize("companions", [{"a": "not a model"}, {1: None}, ["x"]])
def test_companions_must_be_named_modules(companions):
    with pytest.raises(PluginError, match="companions=.*expected a dict name -> torch.nn.Module"):
        _check(companions=companions)
    assert _check(companions={"other": _model()}) is not None
