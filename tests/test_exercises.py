import math
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from scipy import signal, spatial, special, stats

from genai_course.exercises import EXERCISES, check, quiz
from genai_course.mistakes import tutorial_kl, two_factorial_multinomial_pmf

# every chapter, by its notebook's name: the exercise ids' prefix
NOTEBOOK_STEMS = sorted(
    path.stem for path in (Path(__file__).parent.parent / "notebooks").glob("*.ipynb")
)


@pytest.mark.parametrize("exercise_id", list(EXERCISES))
def test_the_reference_passes_its_own_check(exercise_id, capsys):
    assert check(exercise_id, EXERCISES[exercise_id].reference, seed=0)
    assert capsys.readouterr().out.startswith(f"✓ {exercise_id}: all")


def test_every_chapter_has_two_exercises():
    chapters = [exercise_id.split(".")[0] for exercise_id in EXERCISES]
    assert sorted(set(chapters)) == NOTEBOOK_STEMS
    assert all(chapters.count(chapter) >= 2 for chapter in NOTEBOOK_STEMS)


def _no_bias_correction(theta, grad, m, v, t, lr, beta1, beta2, eps):
    m, v = beta1 * m + (1 - beta1) * grad, beta2 * v + (1 - beta2) * grad**2
    return theta - lr * m / (v.sqrt() + eps), m, v


def _in_place_reparameterize(mu, logvar, eps):
    return mu.add_(torch.exp(logvar / 2) * eps)


def _not_written(*args):
    raise NotImplementedError


def _attention_without_mask_rule(q, k, v, scale, future):
    scores = q @ k.T * scale  # (T, T)
    mask = torch.ones_like(scores, dtype=torch.bool)
    mask = mask.triu() if future else mask.tril()
    return scores.masked_fill(~mask, -math.inf).softmax(-1) @ v


def _attention_naive_exp(q, k, v):
    weights = (q @ k.T / math.sqrt(q.shape[1])).exp().tril()  # (T, T), exp of large scores
    return weights / weights.sum(1, keepdim=True) @ v


def _merge_at_every_match(tokens, pair, new_id):
    # every position where the pair starts is merged, even inside an earlier merge
    starts = (tokens[:-1] == pair[0]) & (tokens[1:] == pair[1])  # (N - 1,)
    first = torch.cat([starts, starts.new_zeros(1)])  # (N,): a merge starts here
    second = torch.cat([starts.new_zeros(1), starts])  # (N,): a merge ends here
    return torch.where(first, new_id, tokens)[~second]


def _merge_as_a_list(tokens, pair, new_id):
    out, i, t = [], 0, tokens.tolist()
    while i < len(t):
        matched = i + 1 < len(t) and (t[i], t[i + 1]) == pair
        out.append(new_id if matched else t[i])
        i += 2 if matched else 1
    return out  # a list of ints: an empty one becomes a float tensor


def _coupling(x, mask, s, t, swapped=False):
    kept = 1 - mask if swapped else mask
    return kept * x + (1 - kept) * (x * s.exp() + t), (1 - kept) * s


def _linear_flow(x, W, b, transposed=False, constant=True):
    z = x @ (W if transposed else W.T) + b  # (B, D)
    d = x.shape[1] if constant else 0
    return -0.5 * (z**2).sum(1) - d / 2 * math.log(2 * math.pi) + torch.linalg.slogdet(W)[1]


def _noised(x0, alpha_bar, t, noise, index=None, noise_scale=None):
    a = alpha_bar[t - 1 if index is None else index(t)][:, None]  # (B, 1)
    scale = (1 - a).sqrt() if noise_scale is None else noise_scale(a)
    return a.sqrt() * x0 + scale * noise


def _ddim(x_t, eps_hat, a_t, a_s, signal=None, fresh_noise=False):
    x0_hat = (x_t - math.sqrt(1 - a_t) * eps_hat) / math.sqrt(a_t)
    noise = torch.randn_like(eps_hat) if fresh_noise else eps_hat
    return math.sqrt(a_s if signal is None else signal) * x0_hat + math.sqrt(1 - a_s) * noise


def _ddim_in_place(x_t, eps_hat, a_t, a_s):
    x0_hat = x_t.sub_(math.sqrt(1 - a_t) * eps_hat).div_(math.sqrt(a_t))
    return math.sqrt(a_s) * x0_hat + math.sqrt(1 - a_s) * eps_hat


# planted wrong answers: (exercise, wrong function, what the verdict must say)
WRONG = [
    ("vae.gaussian_kl", tutorial_kl, "wrong values"),
    (
        "vae.gaussian_kl",
        lambda mu, lv: 0.5 * (mu**2 + lv.exp() - 1 - lv),
        "has shape (2, 3), but should have shape (2,)",
    ),  # fmt: skip
    ("vae.reparameterize", lambda mu, lv, eps: mu + lv.exp() * eps, "wrong values"),
    ("vae.reparameterize", _in_place_reparameterize, "changed its input tensors in place"),
    (
        "vae_in_practice.gaussian_log_likelihood",  # sigma where sigma^2 belongs
        lambda x, m, s: (-((x - m) ** 2) / (2 * s) - 0.5 * math.log(2 * math.pi * s)).sum(-1),
        "wrong values",
    ),
    (
        "vae_in_practice.kl_per_dimension",  # summed over the dimensions, as gaussian_kl is
        lambda mu, lv: 0.5 * (mu**2 + lv.exp() - 1 - lv).sum(-1),
        "should have shape",
    ),
    ("cross_entropy.entropy", lambda p: -(p * p.log()).sum(), "non-finite values"),
    ("common_mistakes.log_sum_exp", lambda x: x.exp().sum().log(), "non-finite values"),
    (
        "common_mistakes.multinomial_log_pmf",
        lambda x, p: torch.tensor(two_factorial_multinomial_pmf(x, p)).log(),
        "wrong values",
    ),  # fmt: skip
    (
        "likelihood.gaussian_mle",
        lambda x: (x.mean(0), x.var(0)),
        "value 2 of the result has wrong values",
    ),
    ("gradient_descent.adam_step", _no_bias_correction, "value 1 of the result has wrong values"),
    (
        "gradient_descent.momentum_step",
        lambda theta, g, b, lr, mu: theta - lr * g,
        "returned 1 value(s)",
    ),
    (
        "sequences.bits_per_char",
        lambda logits, t: torch.nn.functional.cross_entropy(logits, t).item(),
        "wrong values",
    ),  # fmt: skip
    ("distributions.categorical_inverse_cdf", lambda p, u: u * 0.0, "should be integer"),
    (
        "sequences.top_k_probs",
        lambda logits, k: torch.softmax(logits, 1) * (logits >= logits.topk(k).values[:, -1:]),
        "wrong values",
    ),  # not renormalised
    ("pipeline.bits_per_dim", lambda nll, d: nll / (d - d), "raised ZeroDivisionError"),
    ("pipeline.image_log_likelihood", _not_written, "not implemented yet"),
    (
        "transformers.causal_attention",  # no 1/sqrt(d)
        lambda q, k, v: _attention_without_mask_rule(q, k, v, 1.0, future=False),
        "wrong values",
    ),
    (
        "transformers.causal_attention",  # the mask transposed: attending to the future
        lambda q, k, v: _attention_without_mask_rule(
            q, k, v, 1 / math.sqrt(q.shape[1]), future=True
        ),
        "wrong values",
    ),
    ("transformers.causal_attention", _attention_naive_exp, "non-finite values"),
    (
        "transformers.bpe_merge",
        _merge_at_every_match,
        "the result has shape (1,), but should have shape (2,)",
    ),
    ("transformers.bpe_merge", _merge_as_a_list, "has dtype torch.float32, but should be integer"),
    (
        "flows.affine_coupling",  # logdet summed over every feature, the kept ones too
        lambda x, m, s, t: (_coupling(x, m, s, t)[0], s.sum(1)),
        "value 2 of the result has wrong values",
    ),
    (
        "flows.affine_coupling",  # the mask read backwards: mask 1 transformed, 0 kept
        lambda x, m, s, t: (_coupling(x, m, s, t, swapped=True)[0], (m * s).sum(1)),
        "value 1 of the result has wrong values",
    ),
    (
        "flows.affine_coupling",  # one logdet for the whole batch
        lambda x, m, s, t: (_coupling(x, m, s, t)[0], _coupling(x, m, s, t)[1].sum()),
        "value 2 of the result has shape (), but should have shape (2,)",
    ),
    (
        "flows.affine_coupling",  # squeezed: a batch of one loses its batch dimension
        lambda x, m, s, t: (_coupling(x, m, s, t)[0], _coupling(x, m, s, t)[1].sum(1).squeeze()),
        "value 2 of the result has shape (), but should have shape (1,)",
    ),
    (
        "flows.linear_flow_log_prob",  # log det W, not log |det W|: nan where det W < 0
        lambda x, W, b: _linear_flow(x, W, b) - torch.linalg.slogdet(W)[1] + torch.det(W).log(),
        "non-finite values",
    ),
    (
        "flows.linear_flow_log_prob",  # the -(D/2) log(2 pi) forgotten
        lambda x, W, b: _linear_flow(x, W, b, constant=False),
        "wrong values",
    ),
    (
        "flows.linear_flow_log_prob",  # x @ W + b: each row mapped by W^T
        lambda x, W, b: _linear_flow(x, W, b, transposed=True),
        "wrong values",
    ),
    (
        "diffusion.noised",  # alpha_bar[t]: off by one, out of range at t = T
        lambda x0, ab, t, e: _noised(x0, ab, t, e, index=lambda t: t),
        "raised IndexError",
    ),
    (
        "diffusion.noised",  # 1 - alpha-bar, a variance, scaling the noise
        lambda x0, ab, t, e: _noised(x0, ab, t, e, noise_scale=lambda a: 1 - a),
        "wrong values",
    ),
    (
        "diffusion.noised",  # sqrt(alpha-bar) for the noise too
        lambda x0, ab, t, e: _noised(x0, ab, t, e, noise_scale=lambda a: a.sqrt()),
        "wrong values",
    ),
    (
        "diffusion.noised",  # one alpha-bar, the first example's, for the whole batch
        lambda x0, ab, t, e: _noised(x0, ab, t, e, index=lambda t: (t[:1] - 1).expand(len(t))),
        "wrong values",
    ),
    (
        "diffusion.noised",  # alpha-bar (B,) not reshaped: it scales the columns when B = D
        lambda x0, ab, t, e: ab[t - 1].sqrt() * x0 + (1 - ab[t - 1]).sqrt() * e,
        "wrong values",
    ),
    (
        "diffusion.ddim_step",  # x0_hat not rescaled by sqrt(a_s)
        lambda x, e, a_t, a_s: _ddim(x, e, a_t, a_s, signal=1.0),
        "wrong values",
    ),
    (
        "diffusion.ddim_step",  # sqrt(a_t) where sqrt(a_s) belongs
        lambda x, e, a_t, a_s: _ddim(x, e, a_t, a_s, signal=a_t),
        "wrong values",
    ),
    (
        "diffusion.ddim_step",  # fresh noise in place of eps_hat, as DDPM's sampler adds
        lambda x, e, a_t, a_s: _ddim(x, e, a_t, a_s, fresh_noise=True),
        "wrong values",
    ),
    (
        "diffusion.ddim_step",  # x0_hat returned: right only when s = 0
        lambda x, e, a_t, a_s: (x - math.sqrt(1 - a_t) * e) / math.sqrt(a_t),
        "wrong values",
    ),
    ("diffusion.ddim_step", _ddim_in_place, "changed its input tensors in place"),
]


@pytest.mark.parametrize(("exercise_id", "wrong", "verdict"), WRONG)
def test_planted_wrong_answers_fail_with_the_right_hint(exercise_id, wrong, verdict, capsys):
    assert not check(exercise_id, wrong, seed=0)
    out = capsys.readouterr().out
    assert out.startswith(f"✗ {exercise_id}: ") and verdict in out
    if verdict != "not implemented yet":
        assert "input:" in out and EXERCISES[exercise_id].hint in out and "seed=0" in out


def test_the_verdict_never_shows_the_answer(capsys):
    # the first fixed case: logits (1000, -1000) and (-1000, 1000), both targets 1
    expected = EXERCISES["sequences.bits_per_char"].reference(
        *EXERCISES["sequences.bits_per_char"].fixed[0]
    )
    assert not check("sequences.bits_per_char", lambda logits, t: 0.0, seed=0)
    out = capsys.readouterr().out
    assert "1442" not in out and "1443" not in out and f"{expected:.3g}" not in out
    assert "1000.0" in out  # the failing input is shown
    # nor by how much a wrong answer is off, which would give a scalar answer away
    assert not check("pipeline.bits_per_dim", lambda nll, d: 2 * nll / (d * math.log(2)), seed=0)
    out = capsys.readouterr().out
    assert "has wrong values." in out and "difference" not in out


def test_a_vector_returned_as_a_list_is_one_result():
    def as_list(x, k):
        return (torch.bincount(x, minlength=k).double() / len(x)).tolist()

    assert check("likelihood.categorical_mle", as_list, seed=0)


def test_fresh_inputs_each_call_and_repeatable_with_a_seed(capsys):
    seen = []

    def spy(nll, d):
        seen.append((nll, d))
        return nll / (d * math.log(2))

    check("pipeline.bits_per_dim", spy, cases=3, seed=5)
    check("pipeline.bits_per_dim", spy, cases=3, seed=5)
    check("pipeline.bits_per_dim", spy, cases=3)
    assert seen[:3] == seen[3:6] and seen[6:] != seen[:3]


def test_check_refuses_bad_arguments():
    with pytest.raises(TypeError, match="student_function must be the function you wrote"):
        check("vae.gaussian_kl", 3.0)
    with pytest.raises(ValueError, match="'vae.kl' is not an exercise; the exercises are pipeline"):
        check("vae.kl", tutorial_kl)
    with pytest.raises(ValueError, match="cases must be a positive int"):
        check("vae.gaussian_kl", tutorial_kl, cases=0)


@pytest.mark.parametrize("stem", NOTEBOOK_STEMS)
def test_every_chapter_has_a_well_formed_quiz(stem):
    questions = quiz(stem)
    assert len(questions) >= 3
    for question in questions:
        assert question["type"] == "multiple_choice" and question["question"]
        assert sum(answer["correct"] for answer in question["answers"]) == 1
        assert all(answer["answer"] and answer["feedback"] for answer in question["answers"])


def test_an_unknown_quiz_is_named():
    with pytest.raises(ValueError, match="chapter 'flow' has no quiz; the quizzes are "):
        quiz("flow")


# -- every reference against an independent implementation ------------------------------
# Each exercise's reference (a library call, a wrapper round one, or the package's own
# function) is compared with a second implementation from another library, or with the
# formula the exercise's task states written out in NumPy, on the exercise's own fixed
# inputs and on its random ones drawn with several seeds.


def _bernoulli_image_log_likelihood(theta, x):
    return stats.bernoulli.logpmf(x.numpy(), theta.numpy()).sum(-1)


def _first_category_above(probs, u):
    # the first k with F(k) > u is the number of k with F(k) <= u (the last if round-off)
    below = np.cumsum(probs.numpy())[None, :] <= u.numpy()[:, None]  # (N, K)
    return np.minimum(below.sum(1), len(probs) - 1)


def _norm_fit_per_column(x):
    fits = [stats.norm.fit(column) for column in x.numpy().T]  # (loc, scale) per column
    return np.array([loc for loc, _ in fits]), np.array([scale for _, scale in fits]) ** 2


def _sgd_momentum_numpy(theta, grad, velocity, lr, momentum):
    b = momentum * velocity.numpy() + grad.numpy()
    return theta.numpy() - lr * b, b


def _adam_numpy(theta, grad, m, v, t, lr, beta1, beta2, eps):
    # Kingma and Ba (2015), algorithm 1
    g = grad.numpy()
    m, v = beta1 * m.numpy() + (1 - beta1) * g, beta2 * v.numpy() + (1 - beta2) * g**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return theta.numpy() - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def _discriminator_loss_scipy(real_logits, fake_logits):
    # -log D(real) - log(1 - D(fake)), with D = sigmoid and 1 - sigmoid(a) = sigmoid(-a)
    return -special.log_expit(real_logits.numpy()) - special.log_expit(-fake_logits.numpy())


def _standard_normal_prior_kl(mu, logvar):
    q = torch.distributions.Normal(mu, torch.exp(logvar / 2))
    return torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)


def _gaussian_quantile_map(mu, logvar, eps):
    # z = F^-1(Phi(eps)) with F the CDF of N(mu, sigma^2); the upper tail through sf and isf
    sigma, eps = np.exp(logvar.numpy() / 2), eps.numpy()
    lower = stats.norm.ppf(stats.norm.cdf(eps), mu.numpy(), sigma)
    upper = stats.norm.isf(stats.norm.sf(eps), mu.numpy(), sigma)
    return np.where(eps < 0, lower, upper)


def _lstm_numpy(x, h, c, w_ih, w_hh, b):
    gates = x.numpy() @ w_ih.numpy().T + h.numpy() @ w_hh.numpy().T + b.numpy()  # (B, 4H)
    i, f, g, o = np.split(gates, 4, axis=1)  # PyTorch's order
    c_t = special.expit(f) * c.numpy() + special.expit(i) * np.tanh(g)
    return special.expit(o) * np.tanh(c_t), c_t


def _bits_per_char_scipy(logits, targets):
    log_probs = special.log_softmax(logits.numpy(), axis=1)  # (N, V)
    return -log_probs[np.arange(len(targets)), targets.numpy()].mean() / np.log(2)


def _top_k_by_rank_numpy(logits, k):
    # a logit is among the k largest when fewer than k logits of its row are strictly larger
    a = logits.numpy()
    keep = (a[:, None, :] > a[:, :, None]).sum(-1) < k  # (N, V)
    p = np.where(keep, special.softmax(a, axis=1), 0.0)
    return p / p.sum(1, keepdims=True)


def _frechet_sqrtm(mu1, cov1, mu2, cov2):
    root = scipy.linalg.sqrtm(cov1.numpy() @ cov2.numpy()).real  # as pytorch-fid computes it
    return ((mu1 - mu2).numpy() ** 2).sum() + np.trace(cov1.numpy() + cov2.numpy() - 2 * root)


def _kd_tree_radius(points, k):
    distances, _ = spatial.KDTree(points.numpy()).query(points.numpy(), k=k + 1)  # (N, k + 1)
    return distances[:, k]  # column 0 is the point itself


def _autograd_linear_backward(grad_out, x, weight):
    x, weight = x.clone().requires_grad_(), weight.clone().requires_grad_()
    bias = weight.new_zeros(len(weight), requires_grad=True)
    return torch.autograd.grad(F.linear(x, weight, bias), (x, weight, bias), grad_out)


def _conv2d_scipy(x, weight, bias, stride, padding):
    p, w = padding, weight.numpy()
    x_pad = np.pad(x.numpy(), ((0, 0), (0, 0), (p, p), (p, p)))  # (N, C, H + 2p, W + 2p)
    out = np.array(
        [
            [
                sum(signal.correlate2d(image[c], w[o, c], mode="valid") for c in range(len(image)))
                for o in range(len(w))
            ]
            for image in x_pad
        ]
    )  # (N, O, H', W') at stride 1
    return out[:, :, ::stride, ::stride] + bias.numpy()[:, None, None]


def _power_iteration_numpy(weight, v, steps):
    w, v = weight.numpy().reshape(len(weight), -1), v.numpy()
    for _ in range(steps):
        s = w @ v / np.linalg.norm(w @ v)
        v = w.T @ s / np.linalg.norm(w.T @ s)
    return s @ w @ v, s, v


def _dirac_step_numpy(theta, psi, lr, alternating):
    # dL_C/dpsi = sigmoid(psi theta) theta, dL_G/dtheta = -sigmoid(-psi theta) psi
    theta, psi = theta.numpy(), psi.numpy()
    new_psi = psi - lr * special.expit(psi * theta) * theta
    against = new_psi if alternating else psi
    return theta + lr * special.expit(-against * theta) * against, new_psi


def _causal_attention_numpy(q, k, v):
    q, k, v = q.numpy(), k.numpy(), v.numpy()
    scores = q @ k.T / np.sqrt(q.shape[1])  # (T, T)
    future = np.arange(len(q))[None, :] > np.arange(len(q))[:, None]  # j > i
    return special.softmax(np.where(future, -np.inf, scores), axis=1) @ v  # (T, d_v)


def _bpe_merge_regex(tokens, pair, new_id):
    # each token one character; re.sub replaces non-overlapping matches left to right
    def spell(*ids):
        return "".join(chr(0x100 + i) for i in ids)

    merged = re.sub(re.escape(spell(*pair)), spell(new_id), spell(*tokens.tolist()))
    return np.array([ord(c) - 0x100 for c in merged], dtype=np.int64)


def _affine_coupling_jacobian(x, mask, s, t):
    # y feature by feature, and log |det| of the Jacobian dy/dx, a diagonal matrix per example
    x, m, s, t = x.numpy(), mask.numpy(), s.numpy(), t.numpy()
    y = np.where(m == 1, x, x * np.exp(s) + t)  # (B, D)
    diagonal = np.where(m == 1, 1.0, np.exp(s))  # (B, D): dy_d / dx_d
    jacobians = diagonal[:, :, None] * np.eye(x.shape[1])  # (B, D, D)
    return y, np.linalg.slogdet(jacobians)[1]


def _linear_flow_as_a_gaussian(x, W, b):
    # z = W x + b ~ N(0, I) makes x = W^-1 (z - b) ~ N(-W^-1 b, W^-1 W^-T) = N(-W^-1 b,
    # (W^T W)^-1): its density with no change of variables written out
    W, b = W.numpy(), b.numpy()
    gaussian = stats.multivariate_normal(-np.linalg.solve(W, b), np.linalg.inv(W.T @ W))
    return np.reshape(gaussian.logpdf(x.numpy()), len(x))  # logpdf drops a batch of one


def _noised_by_the_chains_moments(x0, alpha_bar, t, noise):
    # the betas behind alpha-bar, and the mean's scale and the variance of x_t given x_0 run
    # through the chain x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps_t one step at a time
    ab = alpha_bar.numpy()
    betas = 1 - ab / np.concatenate([[1.0], ab[:-1]])  # (T,)
    scale, variance = [1.0], [0.0]  # at step 0, x_0 itself
    for beta in betas:
        scale.append(np.sqrt(1 - beta) * scale[-1])
        variance.append((1 - beta) * variance[-1] + beta)
    steps = t.numpy()  # (B,): the index of step t in the lists above
    scale, std = np.array(scale)[steps, None], np.sqrt(np.array(variance))[steps, None]
    return scale * x0.numpy() + std * noise.numpy()


def _ddim_as_euler(x_t, eps_hat, a_t, a_s):
    # Song et al. (2021), eq. (14): deterministic DDIM is Euler's method on the ODE
    # d(x / sqrt(a)) = eps d sigma, with sigma = sqrt((1 - a) / a), from sigma_t to sigma_s
    sigma_t, sigma_s = np.sqrt((1 - a_t) / a_t), np.sqrt((1 - a_s) / a_s)
    x_bar = x_t.numpy() / np.sqrt(a_t) + (sigma_s - sigma_t) * eps_hat.numpy()
    return np.sqrt(a_s) * x_bar


def _torch_multinomial(x, probs):
    return torch.distributions.Multinomial(int(x.sum()), probs=probs).log_prob(x)


INDEPENDENT = {
    "pipeline.image_log_likelihood": _bernoulli_image_log_likelihood,
    "pipeline.bits_per_dim": lambda nll, d: nll / d * np.log2(np.e),
    "distributions.gaussian_log_pdf": lambda x, mu, s: torch.distributions.Normal(mu, s).log_prob(
        x
    ),
    "distributions.categorical_inverse_cdf": _first_category_above,
    "likelihood.gaussian_mle": _norm_fit_per_column,
    "likelihood.categorical_mle": lambda x, k: (x.numpy()[:, None] == np.arange(k)).mean(0),
    "cross_entropy.entropy": lambda p: stats.entropy(p.numpy()),
    "cross_entropy.kl_divergence": lambda p, q: stats.entropy(p.numpy(), q.numpy()),
    "gradient_descent.momentum_step": _sgd_momentum_numpy,
    "gradient_descent.adam_step": _adam_numpy,
    "neural_networks.linear_backward": _autograd_linear_backward,
    "neural_networks.conv2d": _conv2d_scipy,
    "gan.discriminator_loss": _discriminator_loss_scipy,
    "gan.generator_loss": lambda fake: -special.log_expit(fake.numpy()),
    "gan_stability.power_iteration": _power_iteration_numpy,
    "gan_stability.dirac_step": _dirac_step_numpy,
    "vae.gaussian_kl": _standard_normal_prior_kl,
    "vae.reparameterize": _gaussian_quantile_map,
    "vae_in_practice.gaussian_log_likelihood": lambda x, m, s: stats.norm.logpdf(
        x.numpy(), m.numpy(), s
    ).sum(-1),
    "vae_in_practice.kl_per_dimension": lambda mu, lv: (
        0.5 * (mu.numpy() ** 2 + np.exp(lv.numpy()) - 1 - lv.numpy())
    ).mean(0),
    "sequences.lstm_cell": _lstm_numpy,
    "sequences.bits_per_char": _bits_per_char_scipy,
    "sequences.top_k_probs": _top_k_by_rank_numpy,
    "transformers.causal_attention": _causal_attention_numpy,
    "transformers.bpe_merge": _bpe_merge_regex,
    "flows.affine_coupling": _affine_coupling_jacobian,
    "flows.linear_flow_log_prob": _linear_flow_as_a_gaussian,
    "diffusion.noised": _noised_by_the_chains_moments,
    "diffusion.ddim_step": _ddim_as_euler,
    "evaluation.frechet_distance": _frechet_sqrtm,
    "evaluation.kth_neighbour_radius": _kd_tree_radius,
    "common_mistakes.log_sum_exp": lambda x: special.logsumexp(x.numpy()),
    "common_mistakes.multinomial_log_pmf": _torch_multinomial,
}


def _cases(exercise_id: str, seeds=range(5), per_seed: int = 10) -> list[tuple]:
    """The exercise's fixed inputs, then its random ones drawn with each seed."""
    exercise = EXERCISES[exercise_id]
    cases = list(exercise.fixed)
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        cases += [exercise.draw(generator) for _ in range(per_seed)]
    return cases


def _as_arrays(value) -> tuple[np.ndarray, ...]:
    """A result (a tensor, a float, an array, or a tuple of them) as NumPy arrays."""
    items = value if isinstance(value, tuple) else (value,)
    return tuple(
        item.detach().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
        for item in items
    )


@pytest.mark.parametrize("exercise_id", list(EXERCISES))
def test_the_reference_agrees_with_an_independent_implementation(exercise_id):
    reference, independent = EXERCISES[exercise_id].reference, INDEPENDENT[exercise_id]
    for inputs in _cases(exercise_id):
        got, want = _as_arrays(reference(*inputs)), _as_arrays(independent(*inputs))
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):  # same shape and dtype, and values
            np.testing.assert_allclose(g, w, rtol=1e-8, atol=1e-10, strict=True)


HALF_LOG_2PI = math.log(2 * math.pi) / 2

# the fixed cases' answers, worked by hand: (exercise, which fixed case, the answer)
FIXED_ANSWERS = [
    ("pipeline.image_log_likelihood", 0, [math.log1p(-1e-12) + math.log(1 - 1e-12)]),
    ("distributions.gaussian_log_pdf", 0, [-800 - HALF_LOG_2PI, -1800 - HALF_LOG_2PI]),  # -x^2 / 2
    ("distributions.categorical_inverse_cdf", 0, [0, 2, 0, 2]),  # category 1 has probability 0
    ("cross_entropy.entropy", 0, 0.0),
    ("cross_entropy.kl_divergence", 0, math.log(2)),  # 2 * (1/2) log((1/2) / (1/4))
    # the first step from zero averages: m-hat = g, v-hat = g^2, a step of lr g / (|g| + eps)
    (
        "gradient_descent.adam_step",
        0,
        (
            [1 - 0.1 * g / (abs(g) + 1e-8) for g in (1.0, -2.0, 1e-3)],
            [0.1, -0.2, 1e-4],
            [1e-3, 4e-3, 1e-9],
        ),
    ),  # fmt: skip
    ("gan.discriminator_loss", 0, [0.0, 200.0]),  # softplus(-100) is 4e-44
    ("gan.generator_loss", 0, [100.0, 0.0, math.log(2)]),
    ("vae.gaussian_kl", 0, [0.0, 0.0]),
    # x = x_mean: the constant alone, -D/2 log(2 pi sigma^2) with D = 5, sigma = 1/2
    ("vae_in_practice.gaussian_log_likelihood", 0, [-2.5 * math.log(math.pi / 2)] * 2),
    ("sequences.bits_per_char", 0, 1000 / math.log(2)),  # 0 nats and 2000 nats, averaged
    # a tie for second place keeps three logits (2, 1, 1): e^2, e, e over e^2 + 2e
    (
        "sequences.top_k_probs",
        0,
        [
            [math.e / (math.e + 2), 1 / (math.e + 2), 1 / (math.e + 2), 0.0],
            [0.0, 0.0, 1 / (1 + math.e), math.e / (1 + math.e)],
        ],
    ),  # fmt: skip
    ("sequences.top_k_probs", 1, [[math.e / (math.e + 1), 1 / (math.e + 1), 0.0]]),
    # row 0 reads only v_0; rows 1 and 2 split evenly between v_0 and v_1
    ("transformers.causal_attention", 1, [[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]]),
    # row 1: softmax(1/4, 0) over v = (1, 0) gives sigmoid(1/4)
    ("transformers.causal_attention", 2, [[1.0], [1 / (1 + math.exp(-0.25))]]),
    ("transformers.bpe_merge", 0, [4, 1]),
    ("transformers.bpe_merge", 2, [0, 1, 2, 3]),
    # mask all ones: y = x and logdet 0, whatever s is
    ("flows.affine_coupling", 0, ([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]], [0.0, 0.0])),
    # mask all zeros: y = x e^s + t with s = (0, 1), and logdet 0 + 1
    ("flows.affine_coupling", 1, ([[1.5, -math.e - 0.5]], [1.0])),
    # the kept features stay, s = +-20 on them counts for nothing
    (
        "flows.affine_coupling",
        2,
        (
            [
                [0.5, math.exp(0.5), -1.0, 2.0 * math.exp(-1.0) + 1.0],
                [-0.5, 2.0 * math.exp(-0.25) + 1.0, 1.5, 2.0],
            ],
            [-0.5, -0.25],
        ),
    ),
    # z = (0, 1) and (-1, 1/2), log |det W| = log 2
    (
        "flows.linear_flow_log_prob",
        0,
        [-0.5 - 2 * HALF_LOG_2PI + math.log(2), -0.625 - 2 * HALF_LOG_2PI + math.log(2)],
    ),
    # z = (3/2, 0, 1), log |det W| = log(1/2)
    (
        "flows.linear_flow_log_prob",
        1,
        [-z * z / 2 - HALF_LOG_2PI - math.log(2) for z in (1.5, 0.0, 1.0)],
    ),
    # z = (0, 0, 1) and (-2, -2, 0), log |det W| = log(1e6)
    (
        "flows.linear_flow_log_prob",
        2,
        [-0.5 - 3 * HALF_LOG_2PI + 6 * math.log(10), -4.0 - 3 * HALF_LOG_2PI + 6 * math.log(10)],
    ),
    # (sqrt(a), sqrt(1 - a)) = (7/25, 24/25) at t = 4 and (24/25, 7/25) at t = 1
    ("diffusion.noised", 0, [[1.24, 0.4], [0.2, 3.44]]),
    ("diffusion.noised", 1, [[1.6, -0.8, 0.2]]),  # (3/5, 4/5) at t = 3
    # s = 0: x0_hat = (x_t - 0.8 eps_hat) / 0.6
    ("diffusion.ddim_step", 0, [[1.0, -14 / 3], [13 / 6, -8 / 3]]),
    # x0_hat = (2, -1, 1/2), then 0.8 x0_hat + 0.6 eps_hat
    ("diffusion.ddim_step", 1, [[2.2, -0.5, -0.8]]),
    ("common_mistakes.log_sum_exp", 0, 1000 + math.log(2)),
    ("common_mistakes.log_sum_exp", 1, -1000 + math.log1p(math.exp(-1))),
]


@pytest.mark.parametrize(("exercise_id", "case", "answer"), FIXED_ANSWERS)
def test_the_reference_gives_the_worked_answer_on_a_fixed_case(exercise_id, case, answer):
    exercise = EXERCISES[exercise_id]
    got = _as_arrays(exercise.reference(*exercise.fixed[case]))
    want = answer if isinstance(answer, tuple) else (answer,)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
