"""Checkpoints: save then load gives identical outputs; writes are atomic; errors name keys."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit.files import digest
from rnnkit.models import SequenceRegressor

MODELS = [
    lambda: rnnkit.LSTM(3, 5, 2, bidirectional=True, batch_first=True, seed=1),
    lambda: rnnkit.RNN(3, 5, nonlinearity="relu", bias=False, seed=1, dtype="float64"),
    lambda: rnnkit.GRU(3, 5, 3, dropout=0.5, seed=1),
    lambda: rnnkit.GRUCell(3, 5, seed=1),
    lambda: rnnkit.Linear(3, 5, seed=1),
    lambda: rnnkit.Embedding(9, 5, seed=1),
    lambda: SequenceRegressor("gru", 3, 5, 2, num_layers=2, seed=1),
]


def _probe(model):
    rng = np.random.default_rng(0)
    if isinstance(model, rnnkit.Embedding):
        return model(rng.integers(0, 9, size=(4, 2)))
    if isinstance(model, (rnnkit.GRUCell, rnnkit.Linear)):
        return model(rng.standard_normal((2, 3)))
    out = model(rng.standard_normal((4, 2, 3)))
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("make", MODELS)
def test_save_then_load_gives_identical_outputs(tmp_path, make):
    model = make()
    path = tmp_path / "m.safetensors"
    rnnkit.save(model, path, metadata={"vocab": ["a", "é"], "step": 3})
    ckpt = rnnkit.load_checkpoint(path)
    assert type(ckpt.model) is type(model)
    assert ckpt.model.config == model.config
    assert ckpt.metadata == {"vocab": ["a", "é"], "step": 3}
    assert np.array_equal(_probe(ckpt.model), _probe(model))


def test_extra_arrays_round_trip(tmp_path):
    model = rnnkit.Linear(2, 2, seed=0)
    moments = {"exp_avg.weight": np.arange(4.0).reshape(2, 2)}
    rnnkit.save(model, tmp_path / "m.safetensors", arrays=moments)
    ckpt = rnnkit.load_checkpoint(tmp_path / "m.safetensors")
    assert np.array_equal(ckpt.arrays["exp_avg.weight"], moments["exp_avg.weight"])
    assert set(ckpt.model.state_dict()) == {"weight", "bias"}


def test_failed_save_leaves_the_old_checkpoint_intact(tmp_path):
    path = tmp_path / "m.safetensors"
    good = rnnkit.LSTM(2, 3, seed=0)
    rnnkit.save(good, path)
    before = path.read_bytes()
    bad = rnnkit.LSTM(2, 3, seed=1)
    bad.params["weight_hh_l0"][0, 0] = np.nan
    with pytest.raises(rnnkit.CheckpointError, match="weight_hh_l0.*NaN"):
        rnnkit.save(bad, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left


def test_load_names_missing_extra_and_misshaped_keys(tmp_path):
    from safetensors.numpy import save_file

    model = rnnkit.GRU(3, 4, seed=0)
    path = tmp_path / "m.safetensors"
    rnnkit.save(model, path)
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as fh:
        meta = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118

    def sealed(edited):  # the edit is deliberate: seal it again, so the key checks are reached
        return dict(meta, checksum=digest(edited, meta))

    missing = dict(tensors)
    del missing["bias_hh_l0"]
    save_file(missing, str(path), metadata=sealed(missing))
    with pytest.raises(rnnkit.CheckpointError, match=r"missing key 'bias_hh_l0'.*\(12,\)"):
        rnnkit.load(path)

    extra = dict(tensors, bias_hh_l9=np.zeros(3, np.float32))
    save_file(extra, str(path), metadata=sealed(extra))
    with pytest.raises(rnnkit.CheckpointError, match=r"unexpected key 'bias_hh_l9'.*\(3,\)"):
        rnnkit.load(path)

    wrong = dict(tensors, weight_ih_l0=np.zeros((12, 5), np.float32))
    save_file(wrong, str(path), metadata=sealed(wrong))
    with pytest.raises(rnnkit.CheckpointError, match=r"weight_ih_l0.*\(12, 3\).*\(12, 5\)"):
        rnnkit.load(path)


def test_load_rejects_missing_foreign_and_malformed_files(tmp_path):
    from safetensors.numpy import save_file

    with pytest.raises(rnnkit.CheckpointError, match="no such checkpoint file"):
        rnnkit.load(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(rnnkit.CheckpointError, match="not a readable safetensors file"):
        rnnkit.load(junk)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": np.zeros(2, np.float32)}, str(foreign))
    with pytest.raises(rnnkit.CheckpointError, match="no rnnkit metadata"):
        rnnkit.load(foreign)
    unknown = tmp_path / "unknown.safetensors"
    meta = {"format": "rnnkit", "format_version": "1", "class": "Transformer", "config": "{}"}
    save_file({"w": np.zeros(2, np.float32)}, str(unknown), metadata=meta)
    with pytest.raises(rnnkit.CheckpointError, match="unknown model class 'Transformer'"):
        rnnkit.load(unknown)


def test_torch_state_dict_loads_without_conversion():
    import torch

    module = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True)
    layer = rnnkit.GRU(3, 4, num_layers=2, bidirectional=True)
    layer.load_state_dict({k: v.numpy() for k, v in module.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(layer(x)[0], module(torch.tensor(x))[0].detach().numpy(), atol=1e-5)


def test_atomic_writes_keep_the_permissions_a_plain_write_gives(tmp_path):
    import os

    path = tmp_path / "m.safetensors"
    rnnkit.save(rnnkit.GRU(2, 3), path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    path.chmod(0o640)
    rnnkit.save(rnnkit.GRU(2, 3), path)  # replacing a file keeps its mode
    assert path.stat().st_mode & 0o777 == 0o640
