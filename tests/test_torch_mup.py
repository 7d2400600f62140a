"""muP for torch.nn.Modules (learnmech.torch.mup) against the JAX path on the twin MLP: the same table, the
same Adam / AdamW trajectory from the same weights, idempotent rescaling, roles and bad input."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

torch = pytest.importorskip("torch")

import models_torch  # noqa: E402  (tests/ is on sys.path)

from learnmech.nets import MLP, mup  # noqa: E402
from learnmech.torch import mup as torch_mup  # noqa: E402

torch.set_num_threads(1)
BASE, WIDTH = 8, 32
JAX_NAME = {"[0]['w']": "l1.weight", "[0]['b']": "l1.bias", "[1]['w']": "l2.weight", "[1]['b']": "l2.bias",
            "[2]['w']": "l3.weight", "[2]['b']": "l3.bias"}


def _jax_net(width):
    return MLP((models_torch.D_IN, width, width, models_torch.D_OUT), "relu", "sp", dtype="float64")


def _jax_shapes(width):
    return jax.eval_shape(_jax_net(width).init, jax.random.key(0))


def _meta(width):
    return models_torch.MLP(width, device="meta")


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_table_equals_the_jax_pytree_table(optimizer):
    jax_rows = {JAX_NAME[r["path"]]: r for r in mup(_jax_shapes(BASE), _jax_shapes(WIDTH), optimizer=optimizer).table()}
    rows = torch_mup(_meta(BASE), _meta(WIDTH), optimizer=optimizer).table()
    assert [r["path"] for r in rows] == ["l1.weight", "l1.bias", "l2.weight", "l2.bias", "l3.weight", "l3.bias"]
    for row in rows:
        want = jax_rows[row["path"]]
        assert (row["kind"], row["role"]) == (want["kind"], want["role"]), row
        for key in ("width_multiplier", "init_multiplier", "lr_multiplier"):  # the same arithmetic: exact
            assert row[key] == want[key], (row, want)
    assert {r["kind"] for r in rows} == {"input", "vector", "hidden", "output", "scalar"}


def _data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, models_torch.D_IN))
    return x, np.sin(x[:, :models_torch.D_OUT])


@pytest.mark.parametrize("opt", ["adam", "adamw"])
def test_param_groups_reproduce_the_jax_mup_trajectory(opt):
    # Same weights (one draw, transposed between layouts), 3 steps of muP Adam(W) at lr 0.01 on the same MSE loss, float64 on
    # both sides. optax.adamw decays by lr * wd, then the muP multiplier scales the update; torch AdamW decays by
    # lr_group * wd with lr_group = lr * multiplier: the conventions agree. Tolerance 1e-10 (float64 round-off
    # over 3 steps; Adam's eps enters both identically).
    lr, wd = 1e-2, 0.1
    x, y = _data()
    net = _jax_net(WIDTH)
    P = mup(_jax_shapes(BASE), _jax_shapes(WIDTH))
    raw = models_torch.to_jax(models_torch.make(WIDTH, 1))  # the JAX pytree layout, drawn without compiling
    params = P.init(lambda _: raw)(None)
    tx = P.optimizer(optax.adam(lr) if opt == "adam" else optax.adamw(lr, weight_decay=wd))
    state = tx.init(params)
    loss = lambda p: 0.5 * ((net.apply(p, x) - y) ** 2).mean()  # noqa: E731

    def step(carry, _):
        params, state = carry
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        return (optax.apply_updates(params, updates), state), None

    params = jax.jit(lambda c: jax.lax.scan(step, c, None, length=3)[0][0])((params, state))  # one compile

    model = models_torch.from_jax(raw)
    T = torch_mup(_meta(BASE), _meta(WIDTH))
    T.rescale_(model)
    groups = T.param_groups(model, lr, weight_decay=0.0 if opt == "adam" else wd)
    optim = torch.optim.Adam(groups) if opt == "adam" else torch.optim.AdamW(groups)
    tx_, ty = torch.as_tensor(x), torch.as_tensor(y)
    for _ in range(3):
        optim.zero_grad()
        (0.5 * ((model(tx_) - ty) ** 2).mean()).backward()
        optim.step()
    for want, got in zip(params, models_torch.to_jax(model)):
        np.testing.assert_allclose(got["w"], np.asarray(want["w"]), rtol=0, atol=1e-10)
        np.testing.assert_allclose(got["b"], np.asarray(want["b"]), rtol=0, atol=1e-10)


def test_rescale_is_idempotent_and_refuses_other_base_shapes():
    T = torch_mup(_meta(BASE), _meta(WIDTH))
    model = models_torch.make(WIDTH, 0)
    before = model.l3.weight.detach().clone()
    assert T.rescale_(model) is model
    np.testing.assert_array_equal(model.l3.weight.detach(), before * 0.5)  # m = 4: readout std / sqrt(4)
    torch_mup(_meta(BASE), _meta(WIDTH)).rescale_(model)  # an equal TorchMuP counts as the same: no-op
    np.testing.assert_array_equal(model.l3.weight.detach(), before * 0.5)
    with pytest.raises(ValueError, match="other base shapes"):
        torch_mup(_meta(16), _meta(WIDTH)).rescale_(model)
    zero = torch_mup(_meta(BASE), _meta(WIDTH), zero_readout=True).rescale_(models_torch.make(WIDTH, 0))
    assert float(zero.l3.weight.detach().abs().max()) == 0.0
    same = torch_mup(_meta(WIDTH), _meta(WIDTH))
    assert all(r["init_multiplier"] == 1.0 and r["lr_multiplier"] == 1.0 for r in same.table())


class _Attention(torch.nn.Module):
    """A user's tiny attention LM, to check roles: names say query/key/value/output, the embedding is tied."""

    def __init__(self, d: int, vocab: int = 11):
        super().__init__()
        self.wte = torch.nn.Embedding(vocab, d, device="meta")
        self.q_proj = torch.nn.Linear(d, d, device="meta")
        self.k_proj = torch.nn.Linear(d, d, device="meta")
        self.v_proj = torch.nn.Linear(d, d, device="meta")
        self.o_proj = torch.nn.Linear(d, d, device="meta")
        self.lm_head = torch.nn.Linear(d, vocab, bias=False, device="meta")
        self.lm_head.weight = self.wte.weight  # tied


def test_roles_from_names_tied_embedding_and_zero_query():
    T = torch_mup(_Attention(16), _Attention(64), zero_query=True)
    rows = {r["path"]: r for r in T.table()}
    assert "lm_head.weight" not in rows  # one tensor, listed once under the embedding's name
    assert (rows["wte.weight"]["role"], rows["wte.weight"]["kind"]) == ("tied_embedding", "input")
    assert [rows[f"{p}_proj.weight"]["role"] for p in "qkvo"] == ["query", "key", "value", "attn_output"]
    assert rows["q_proj.bias"]["role"] is None and rows["q_proj.bias"]["kind"] == "vector"  # shapes overrule the name
    assert rows["q_proj.weight"]["init_multiplier"] == 0.0 and rows["k_proj.weight"]["init_multiplier"] == 1.0
    assert rows["wte.weight"]["lr_multiplier"] == 1.0 and rows["v_proj.weight"]["lr_multiplier"] == 0.25
    assert T.tied_readout_multiplier == 0.25  # base width / width, mup's MuSharedReadout
    tagged = torch_mup(_Attention(16), _Attention(64), roles={"o_proj.weight": "value"}, kinds={"o_proj.bias": "output"})
    rows = {r["path"]: r for r in tagged.table()}
    assert rows["o_proj.weight"]["role"] == "value" and rows["o_proj.bias"]["kind"] == "output"


class _Embedder(torch.nn.Module):
    """An embedding drawn with std 1/sqrt(d) (flax's nnx.Embed default), then a readout."""

    def __init__(self, d: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.embed = torch.nn.Embedding(64, d, dtype=torch.float64)
        self.readout = torch.nn.Linear(d, 5, dtype=torch.float64)
        with torch.no_grad():
            self.embed.weight.normal_(0.0, d**-0.5, generator=g)


def test_an_embedding_that_shrinks_with_width_is_named_and_base_convention_fixes_it():
    with pytest.warns(UserWarning, match=r"embed.weight \(input\): init RMS ratio target/base 0.4\d+ .* m\^-0.5"):
        torch_mup(_Embedder(16, 0), _Embedder(64, 1))
    rows = {r["path"]: r for r in torch_mup(_Embedder(16, 0), _Embedder(64, 1), init_convention="base").table()}
    # "base": target RMS made the base's times m^-b (b = 0 for an input layer): a multiplier near sqrt(4) = 2,
    # off by the two draws' RMS estimates (64 x 16 and 64 x 64 Gaussian entries: a few percent)
    assert rows["embed.weight"]["init_multiplier"] == pytest.approx(2.0, rel=0.05)
    assert rows["embed.weight"]["role"] == "embedding" and rows["readout.weight"]["role"] == "readout"


def test_without_torch_the_subpackage_says_how_to_install_it(monkeypatch):
    import sys

    for name in [n for n in sys.modules if n == "learnmech.torch" or n.startswith("learnmech.torch.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch", None)  # what an environment without torch looks like to import
    with pytest.raises(ImportError, match=r"pip install 'learnmech\[torch\]'"):
        import learnmech.torch  # noqa: F401


@pytest.mark.parametrize("call, message", [
    (lambda: torch_mup(_meta(8), _meta(32), optimizer="lion"), "optimizer: must be"),
    (lambda: torch_mup(_meta(8), _meta(32), parameterization="ntk"), "cannot be applied from outside"),
    (lambda: torch_mup(_meta(8), _meta(32), weight_layout="nchw"), "weight_layout: must be"),
    (lambda: torch_mup(_meta(8), _meta(32), init_convention="he"), "init_convention: must be"),
    (lambda: torch_mup(_meta(8), _meta(32), kinds={"nope": "vector"}), "kinds: no parameter at"),
    (lambda: torch_mup(_meta(8), _meta(32), roles={"l2.weight": "readout"}), "tagged 'output'"),
    (lambda: torch_mup(_meta(8), _meta(32), roles={"l2.weight": "gate"}), r"roles: \{'l2.weight': 'gate'\} not allowed; allowed"),
    (lambda: torch_mup(_meta(8), _Attention(32)), "parameter names differ"),
    (lambda: torch_mup({}, _meta(32)), "base: must be a torch.nn.Module"),
    (lambda: torch_mup(_meta(8), _meta(32)).rescale_(models_torch.make(16)), "differ from the target"),
    (lambda: torch_mup(_meta(8), _meta(32)).param_groups(models_torch.make(32), 0.0), "lr: must be a positive"),
    (lambda: torch_mup(_meta(8), _meta(32)).tied_readout_multiplier, "no parameter is a tied embedding"),
    (lambda: torch_mup(_meta(8), _meta(32), init_convention="base"), "not on the meta device"),
])
def test_bad_input_gives_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
