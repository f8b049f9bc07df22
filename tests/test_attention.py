import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from genai_course.attention import (
    MultiHeadAttention,
    apply_rotary,
    attention_weights,
    causal_mask,
    random_attention,
    scaled_dot_product_attention,
    sinusoidal_positions,
    softmax_entropy,
)

TOL = {"atol": 1e-10, "rtol": 0}
D64 = torch.float64


def randn(*shape, generator):
    return torch.randn(*shape, generator=generator, dtype=D64)


def random_mask(shape, generator):
    """Random booleans of ``shape`` (..., Tq, Tk), one True forced in every row."""
    mask = torch.rand(shape, generator=generator) < 0.5
    keep = torch.randint(shape[-1], shape[:-1] + (1,), generator=generator)
    return mask.scatter(-1, keep, True)


def weighted_sum(out):
    """A loss that weights every output differently, so that every gradient is checked."""
    return (out * torch.linspace(-1, 2, out.numel(), dtype=out.dtype).reshape(out.shape)).sum()


# -- scaled dot-product attention ----------------------------------------------------------


@settings(max_examples=40)
@given(
    st.integers(1, 3),  # batch
    st.integers(1, 3),  # heads
    st.integers(1, 5),  # Tq
    st.integers(1, 5),  # Tk
    st.integers(1, 6),  # d
    st.integers(1, 4),  # d_v
    st.sampled_from(["none", "mask", "broadcast mask", "causal", "scale"]),
    st.integers(0, 2**16),  # seed
)
def test_sdpa_equals_torch_outputs_and_gradients(B, H, Tq, Tk, d, dv, kind, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = randn(B, H, Tq, d, generator=g), randn(B, H, Tk, d, generator=g), randn(
        B, H, Tk, dv, generator=g
    )
    options = {}
    if kind == "mask":
        options["mask"] = random_mask((B, H, Tq, Tk), g)
    elif kind == "broadcast mask":
        options["mask"] = random_mask((Tq, Tk), g)
    elif kind == "causal":
        options["causal"] = True
    elif kind == "scale":
        options["scale"] = [0.3, 2.0, -1.5][seed % 3]
    theirs_options = {
        "attn_mask": options.get("mask"),
        "is_causal": options.get("causal", False),
        "scale": options.get("scale"),
    }
    results = []
    for fn, opts in ((scaled_dot_product_attention, options), (F.scaled_dot_product_attention,
                                                                theirs_options)):  # fmt: skip
        inputs = [t.clone().requires_grad_() for t in (q, k, v)]
        out = fn(*inputs, **opts)
        weighted_sum(out).backward()
        results.append([out] + [t.grad for t in inputs])
    for ours, theirs in zip(*results, strict=True):
        torch.testing.assert_close(ours, theirs, **TOL)


@settings(max_examples=25)
@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**16))
def test_attention_weights_are_torchs_attention_on_one_hot_values(Tq, Tk, d, seed):
    # attention to the values I (one-hot per key) returns the weights themselves
    g = torch.Generator().manual_seed(seed)
    q, k = randn(2, Tq, d, generator=g), randn(2, Tk, d, generator=g)
    mask = random_mask((2, Tq, Tk), g)
    A = attention_weights(q, k, mask)
    eye = torch.eye(Tk, dtype=D64).expand(2, Tk, Tk)
    torch.testing.assert_close(A, F.scaled_dot_product_attention(q, k, eye, attn_mask=mask), **TOL)
    torch.testing.assert_close(A.sum(-1), torch.ones(2, Tq, dtype=D64), **TOL)
    assert (A[~mask] == 0).all()


def test_causal_mask_is_j_at_most_i_and_matches_is_causal():
    M = causal_mask(4)
    i, j = torch.arange(4)[:, None], torch.arange(4)[None, :]
    assert M.dtype == torch.bool and M.shape == (4, 4)
    assert torch.equal(M, j <= i)
    g = torch.Generator().manual_seed(0)
    q, k, v = (randn(2, 4, 3, generator=g) for _ in range(3))
    torch.testing.assert_close(
        scaled_dot_product_attention(q, k, v, mask=M),
        scaled_dot_product_attention(q, k, v, causal=True),
        **TOL,
    )
    # the first query can read only the first key: its output is v_0 exactly
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, mask=M)[:, 0], v[:, 0], **TOL)


# -- multi-head attention ------------------------------------------------------------------


def torch_mask(mask, B, H):
    """Our mask (True = may attend) as nn.MultiheadAttention's (True = may NOT attend)."""
    if mask.ndim == 2:
        return ~mask
    return (~mask)[:, None].expand(B, H, *mask.shape[1:]).reshape(B * H, *mask.shape[1:])


@settings(max_examples=30)
@given(
    st.integers(1, 3),  # batch
    st.integers(1, 3),  # heads
    st.integers(1, 3),  # head_dim
    st.integers(1, 5),  # Tq
    st.integers(1, 5),  # Tk (cross-attention)
    st.sampled_from(["self", "cross"]),
    st.sampled_from(["none", "causal", "mask"]),
    st.booleans(),  # bias
    st.integers(0, 2**16),
)
def test_multihead_equals_torch(B, H, hd, Tq, Tk, attend, masking, bias, seed):
    torch.manual_seed(seed)
    E = H * hd
    theirs = nn.MultiheadAttention(E, H, bias=bias, batch_first=True).to(D64)
    with torch.no_grad():  # torch zeroes its biases at first: make them count
        for p in theirs.parameters():
            p.normal_()
    ours = MultiHeadAttention(E, H, bias=bias).to(D64).copy_from(theirs)
    x = torch.randn(B, Tq, E, dtype=D64)
    Tk = Tq if attend == "self" else Tk
    kv = x if attend == "self" else torch.randn(B, Tk, E, dtype=D64)
    mask = None
    if masking == "causal":
        mask = causal_mask(Tq) if attend == "self" else torch.ones(Tq, Tk, dtype=bool).tril()
    elif masking == "mask":
        mask = random_mask((B, Tq, Tk), torch.Generator().manual_seed(seed))

    xq, xkv = x.clone().requires_grad_(), kv.clone().requires_grad_()
    key = None if attend == "self" else xkv
    if masking == "causal":
        out, A = ours(xq, key, causal=True)
    else:
        out, A = ours(xq, key, mask=mask)
    weighted_sum(out).backward()

    yq, ykv = x.clone().requires_grad_(), kv.clone().requires_grad_()
    attn_mask = None if mask is None else torch_mask(mask, B, H)
    ykv_used = yq if attend == "self" else ykv
    out_t, A_t = theirs(yq, ykv_used, ykv_used, attn_mask=attn_mask, average_attn_weights=False)
    weighted_sum(out_t).backward()

    torch.testing.assert_close(out, out_t, **TOL)
    assert A.shape == (B, H, Tq, Tk)
    torch.testing.assert_close(A, A_t, **TOL)
    # torch's default returns the weights averaged over the heads
    _, A_mean = theirs(x, kv, kv, attn_mask=attn_mask)
    torch.testing.assert_close(A.mean(1), A_mean, **TOL)
    torch.testing.assert_close(xq.grad, yq.grad, **TOL)
    if attend == "cross":
        torch.testing.assert_close(xkv.grad, ykv.grad, **TOL)
    in_grad = torch.cat([p.weight.grad for p in (ours.q_proj, ours.k_proj, ours.v_proj)])
    torch.testing.assert_close(in_grad, theirs.in_proj_weight.grad, **TOL)
    torch.testing.assert_close(ours.out_proj.weight.grad, theirs.out_proj.weight.grad, **TOL)
    if bias:
        in_bias = torch.cat([p.bias.grad for p in (ours.q_proj, ours.k_proj, ours.v_proj)])
        torch.testing.assert_close(in_bias, theirs.in_proj_bias.grad, **TOL)
        torch.testing.assert_close(ours.out_proj.bias.grad, theirs.out_proj.bias.grad, **TOL)


def test_torch_multihead_reads_a_boolean_mask_the_other_way_round():
    # the same boolean mask means opposite things to the two modules: only ~mask agrees
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(4, 2, batch_first=True).to(D64)
    ours = MultiHeadAttention(4, 2).to(D64).copy_from(theirs)
    x = torch.randn(2, 5, 4, dtype=D64)
    i, j = torch.arange(5)[:, None], torch.arange(5)[None, :]
    M = (i + j) % 2 == 0  # a checkerboard: every row has keys to read and keys to skip
    _, A = ours(x, mask=M)
    _, A_same = theirs(x, x, x, attn_mask=M, average_attn_weights=False)
    _, A_flipped = theirs(x, x, x, attn_mask=~M, average_attn_weights=False)
    torch.testing.assert_close(A, A_flipped, **TOL)
    assert (A[..., ~M] == 0).all() and (A[..., M] > 0).all()
    assert (A_same[..., M] == 0).all() and (A_same[..., ~M] > 0).all()  # the complement


def test_multihead_init_has_torchs_layout_and_a_padding_mask_works():
    torch.manual_seed(0)
    ours = MultiHeadAttention(6, 3)
    assert [tuple(p.shape) for p in ours.parameters()] == [(6, 6), (6,)] * 4
    assert all((p.bias == 0).all() for p in (ours.q_proj, ours.k_proj, ours.out_proj))
    # a (B, 1, Tk) mask hides padded keys of each sequence from every query and head
    x = torch.randn(2, 4, 6)
    keys_kept = torch.tensor([[True, True, True, True], [True, True, False, False]])
    _, A = ours(x, mask=keys_kept[:, None, :])
    assert A.shape == (2, 3, 4, 4)
    assert (A[1, :, :, 2:] == 0).all() and (A[0] > 0).all()


# -- order: a set, until positions or a mask ------------------------------------------------


@settings(max_examples=20)
@given(st.integers(2, 6), st.integers(1, 3), st.integers(0, 2**16))
def test_self_attention_is_permutation_equivariant(T, H, seed):
    torch.manual_seed(seed)
    mha = MultiHeadAttention(2 * H, H).to(D64)
    x = torch.randn(2, T, 2 * H, dtype=D64)
    perm = torch.randperm(T)
    out, A = mha(x)
    out_p, A_p = mha(x[:, perm])
    torch.testing.assert_close(out_p, out[:, perm], **TOL)
    torch.testing.assert_close(A_p, A[:, :, perm][:, :, :, perm], **TOL)


def test_a_causal_mask_breaks_permutation_equivariance():
    torch.manual_seed(0)
    mha = MultiHeadAttention(4, 2).to(D64)
    x = torch.randn(1, 5, 4, dtype=D64)
    perm = torch.arange(4, -1, -1)  # reversed
    out, _ = mha(x, causal=True)
    out_p, _ = mha(x[:, perm], causal=True)
    assert (out_p - out[:, perm]).abs().max() > 1e-3
    # the last position of the reversed sequence read every token, as the first read one
    torch.testing.assert_close(out_p[:, -1], mha(x)[0][:, 0], **TOL)


# -- positions -----------------------------------------------------------------------------


def test_sinusoidal_positions_known_values_and_shape():
    pe = sinusoidal_positions(50, 6, dtype=D64)
    assert pe.shape == (50, 6) and sinusoidal_positions(3, 4).dtype == torch.float32
    torch.testing.assert_close(pe[0], torch.tensor([0.0, 1, 0, 1, 0, 1], dtype=D64), **TOL)
    # omega_i = 10000^(-2i/6): 1, 10000^(-1/3), 10000^(-2/3)
    for t in (1, 7, 49):
        for j in range(6):
            angle = t / 10000 ** (2 * (j // 2) / 6)
            expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert abs(pe[t, j].item() - expected) < 1e-12
    assert abs(pe[1, 0].item() - math.sin(1.0)) < 1e-15


@pytest.mark.parametrize("offset", [1, 3, 10])
def test_sinusoidal_shift_is_a_rotation_of_each_pair(offset):
    dim = 8
    pe = sinusoidal_positions(40, dim, dtype=D64)
    omega = 10000.0 ** (-torch.arange(0, dim, 2, dtype=D64) / dim)
    c, s = (offset * omega).cos(), (offset * omega).sin()
    # (sin w(t+k), cos w(t+k)) = [[cos wk, sin wk], [-sin wk, cos wk]] (sin wt, cos wt)
    R = torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2)  # (dim/2, 2, 2)
    pairs = pe.view(40, dim // 2, 2)  # (T, dim/2, 2)
    shifted = torch.einsum("iab,tib->tia", R, pairs[:-offset])
    torch.testing.assert_close(shifted, pairs[offset:], **TOL)


@settings(max_examples=25)
@given(
    st.integers(1, 4),  # d / 2
    st.integers(1, 6),  # T
    st.sampled_from([10.0, 100.0, 10000.0]),
    st.integers(0, 2**16),
)
def test_rotary_preserves_norms_and_is_complex_multiplication(half, T, base, seed):
    g = torch.Generator().manual_seed(seed)
    d = 2 * half
    x = randn(2, 3, T, d, generator=g)
    positions = torch.randint(0, 100, (T,), generator=g)
    y = apply_rotary(x, positions, base)
    assert y.shape == x.shape
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1), **TOL)
    # z_i = x_2i + i x_2i+1 times e^{i m theta_i}
    theta = base ** (-torch.arange(0, d, 2, dtype=D64) / d)
    z = torch.view_as_complex(x.reshape(2, 3, T, half, 2).contiguous())
    turned = z * torch.polar(torch.ones(T, half, dtype=D64), positions[:, None] * theta)
    torch.testing.assert_close(y, torch.view_as_real(turned).reshape(x.shape), **TOL)
    # the default positions are 0 .. T-1, and position 0 leaves a token as it is
    torch.testing.assert_close(apply_rotary(x), apply_rotary(x, torch.arange(T)), **TOL)
    torch.testing.assert_close(apply_rotary(x, torch.zeros(T)), x, **TOL)


@settings(max_examples=30)
@given(
    st.integers(1, 4),  # d / 2
    st.integers(0, 60),  # m
    st.integers(0, 60),  # n
    st.integers(-30, 30),  # shift s
    st.integers(0, 2**16),
)
def test_rotary_dot_product_depends_only_on_relative_position(half, m, n, s, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = randn(1, 2 * half, generator=g), randn(1, 2 * half, generator=g)

    def score(i, j):
        qi = apply_rotary(q, torch.tensor([float(i)], dtype=D64))
        kj = apply_rotary(k, torch.tensor([float(j)], dtype=D64))
        return (qi * kj).sum()

    torch.testing.assert_close(score(m, n), score(m + s, n + s), atol=1e-10, rtol=0)


def test_rotary_known_value_and_positions_per_sequence():
    # d = 2: theta_0 = 1, so (1, 0) at position m goes to (cos m, sin m)
    x = torch.tensor([[1.0, 0.0]], dtype=D64)
    for m in (1, 2, 5):
        y = apply_rotary(x, torch.tensor([m]))
        torch.testing.assert_close(y, torch.tensor([[math.cos(m), math.sin(m)]], dtype=D64))
    # positions (B, T): each sequence at its own offset, as with a cache
    g = torch.Generator().manual_seed(0)
    x = randn(2, 3, 4, generator=g)
    positions = torch.tensor([[0, 1, 2], [5, 6, 7]])
    y = apply_rotary(x, positions)
    torch.testing.assert_close(y[1], apply_rotary(x[1], torch.tensor([5, 6, 7])), **TOL)
    torch.testing.assert_close(y[0], apply_rotary(x[0]), **TOL)


# -- why the scale -------------------------------------------------------------------------


def test_softmax_entropy_equals_torch_categorical():
    g = torch.Generator().manual_seed(0)
    w = randn(3, 4, 7, generator=g).softmax(-1)
    expected = torch.distributions.Categorical(probs=w).entropy()
    torch.testing.assert_close(softmax_entropy(w), expected, **TOL)
    assert softmax_entropy(torch.full((5,), 0.2, dtype=D64)).item() == pytest.approx(math.log(5))
    assert softmax_entropy(torch.tensor([0.0, 1.0, 0.0])).item() == 0.0


def test_without_the_scale_attention_saturates_as_d_grows():
    g = torch.Generator().manual_seed(0)
    num_keys = 16

    def measure(dim, scaled):
        A = random_attention(dim, num_keys, 400, scaled=scaled, generator=g)
        return softmax_entropy(A).mean().item(), A.amax(-1).mean().item()

    scaled_small, scaled_large = measure(4, True), measure(1024, True)
    unscaled_small, unscaled_large = measure(4, False), measure(1024, False)
    # scaled: variance 1 at every width, the same entropy (log 16 = 2.77 at most)
    assert abs(scaled_small[0] - scaled_large[0]) < 0.15
    assert scaled_large[0] > 1.5
    # unscaled: entropy falls to near 0 and one key takes almost all the weight
    assert unscaled_large[0] < 0.25 < 1.0 < unscaled_small[0]
    assert unscaled_large[1] > 0.9 > 0.5 > scaled_large[1]


# -- bad input -----------------------------------------------------------------------------

q3 = torch.zeros(2, 3, 4, dtype=D64)
k5 = torch.zeros(2, 5, 4, dtype=D64)
v5 = torch.zeros(2, 5, 2, dtype=D64)
mha = MultiHeadAttention(4, 2).to(D64)
x4 = torch.zeros(2, 3, 4, dtype=D64)
BAD = [
    (lambda: causal_mask(0), ValueError, "length"),
    (lambda: attention_weights([1.0], k5), TypeError, "q must be a torch.Tensor"),
    (lambda: attention_weights(q3.long(), k5), ValueError, "q must be a floating"),
    (lambda: attention_weights(q3, k5.float()), ValueError, "k must have the dtype"),
    (lambda: attention_weights(q3[0, 0], k5), ValueError, "q and k must have shapes"),
    (lambda: attention_weights(q3, k5[..., :3]), ValueError, r"q \(..., Tq, d\) and k"),
    (lambda: attention_weights(q3, k5[:1]), ValueError, "batch dims"),
    (lambda: attention_weights(q3, k5[:, :0]), ValueError, "at least one key"),
    (lambda: attention_weights(q3, k5, torch.ones(3, 5)), ValueError, "mask must be a boolean"),
    (lambda: attention_weights(q3, k5, [[True]]), TypeError, "mask must be a torch.Tensor"),
    (lambda: attention_weights(q3, k5, causal_mask(5)), ValueError, "mask must broadcast"),
    (
        lambda: attention_weights(q3, k5, torch.ones(3, 5, dtype=bool, device="meta")),
        ValueError,
        "mask must be on",
    ),
    (
        lambda: attention_weights(q3, k5, torch.zeros(3, 5, dtype=bool)),
        ValueError,
        "mask leaves a query with nothing",
    ),
    (lambda: attention_weights(q3, k5, scale=math.inf), ValueError, "scale must be finite"),
    (lambda: attention_weights(q3, k5, scale="1"), TypeError, "scale must be a real"),
    (lambda: scaled_dot_product_attention(q3, k5, v5[:, :4]), ValueError, "v must have shape"),
    (lambda: scaled_dot_product_attention(q3, k5, v5.float()), ValueError, "v must have the"),
    (lambda: scaled_dot_product_attention(q3, k5, [0.0]), TypeError, "v must be a torch"),
    (
        lambda: scaled_dot_product_attention(q3, k5, v5, torch.ones(3, 5, dtype=bool), True),
        ValueError,
        "give mask or causal",
    ),
    (lambda: scaled_dot_product_attention(q3, k5, v5, causal=1), TypeError, "causal"),
    (lambda: MultiHeadAttention(6, 4), ValueError, "num_heads must divide embed_dim"),
    (lambda: MultiHeadAttention(0, 1), ValueError, "embed_dim"),
    (lambda: MultiHeadAttention(4, 0), ValueError, "num_heads"),
    (lambda: MultiHeadAttention(4, 2, bias="yes"), TypeError, "bias"),
    (lambda: mha(x4[..., :3]), ValueError, r"query must have shape \(B, T, 4\)"),
    (lambda: mha(x4[0]), ValueError, "query must have shape"),
    (lambda: mha(x4.float()), ValueError, "query must have the dtype"),
    (lambda: mha(x4, x4[:1]), ValueError, "key and value must have the same"),
    (lambda: mha(x4, x4, x4[:, :2]), ValueError, "key and value must have the same"),
    (lambda: mha(x4, x4, x4[..., :2]), ValueError, "value must have shape"),
    (lambda: mha(x4, mask=causal_mask(3), causal=True), ValueError, "give mask or causal"),
    (lambda: mha(x4, mask=causal_mask(4)), ValueError, "mask must broadcast"),
    (lambda: mha(x4, mask=causal_mask(3).float()), ValueError, "mask must be a boolean"),
    (lambda: mha.copy_from(nn.Linear(4, 4)), TypeError, "mha must be a torch.nn.Multihead"),
    (lambda: mha.copy_from(nn.MultiheadAttention(4, 1)), ValueError, "mha must match"),
    (lambda: mha.copy_from(nn.MultiheadAttention(4, 2, kdim=3)), ValueError, "mha must match"),
    (
        lambda: mha.copy_from(nn.MultiheadAttention(4, 2, add_bias_kv=True)),
        ValueError,
        "no add_bias_kv",
    ),
    (lambda: sinusoidal_positions(0, 4), ValueError, "length"),
    (lambda: sinusoidal_positions(3, 0), ValueError, "dim"),
    (lambda: sinusoidal_positions(3, 5), ValueError, "dim must be even"),
    (lambda: apply_rotary(torch.zeros(3, 4, dtype=int)), ValueError, "x must be a floating"),
    (lambda: apply_rotary(torch.zeros(4)), ValueError, r"x must have shape \(..., T, d\)"),
    (lambda: apply_rotary(torch.zeros(3, 5)), ValueError, r"x.shape\[-1\] \(d\) must be even"),
    (lambda: apply_rotary(torch.zeros(3, 4), base=1.0), ValueError, "base"),
    (lambda: apply_rotary(torch.zeros(3, 4), base=True), ValueError, "base"),
    (lambda: apply_rotary(torch.zeros(3, 4), [0, 1, 2]), ValueError, "positions must be a"),
    (
        lambda: apply_rotary(torch.zeros(3, 4), torch.ones(3, dtype=bool)),
        ValueError,
        "positions must be a",
    ),
    (
        lambda: apply_rotary(torch.zeros(3, 4), torch.ones(3, dtype=torch.complex64)),
        ValueError,
        "positions must be real",
    ),
    (lambda: apply_rotary(torch.zeros(3, 4), torch.arange(4)), ValueError, "positions must"),
    (lambda: softmax_entropy([0.5, 0.5]), TypeError, "weights must be a torch"),
    (lambda: softmax_entropy(torch.zeros(2, 0)), ValueError, "weights must have shape"),
    (lambda: softmax_entropy(torch.tensor([1.5, -0.5])), ValueError, "weights must be rows"),
    (lambda: softmax_entropy(torch.tensor([0.5, 0.4])), ValueError, "weights must be rows"),
    (lambda: random_attention(0, 4), ValueError, "dim"),
    (lambda: random_attention(4, 0), ValueError, "num_keys"),
    (lambda: random_attention(4, 4, 0), ValueError, "num_queries"),
    (lambda: random_attention(4, 4, scaled=1), TypeError, "scaled"),
    (lambda: random_attention(4, 4, generator=0), TypeError, "generator"),
]


@pytest.mark.parametrize(("call", "error", "match"), BAD)
def test_bad_input_raises_an_error_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
