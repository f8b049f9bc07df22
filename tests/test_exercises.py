import math

import pytest
import torch

from genai_course.exercises import EXERCISES, check, quiz
from genai_course.mistakes import tutorial_kl, two_factorial_multinomial_pmf

NOTEBOOK_STEMS = [
    "00_pipeline", "01_distributions", "02_likelihood", "03_cross_entropy",
    "04_gradient_descent", "05_gan", "06_vae", "07_sequences", "08_evaluation",
    "A_common_mistakes",
]  # fmt: skip


@pytest.mark.parametrize("exercise_id", list(EXERCISES))
def test_the_reference_passes_its_own_check(exercise_id, capsys):
    assert check(exercise_id, EXERCISES[exercise_id].reference, seed=0)
    assert capsys.readouterr().out.startswith(f"✓ {exercise_id}: all")


def test_every_chapter_has_two_exercises():
    chapters = [exercise_id.split(".")[0] for exercise_id in EXERCISES]
    expected = ["A" if stem.startswith("A") else f"ch{int(stem[:2])}" for stem in NOTEBOOK_STEMS]
    assert sorted(set(chapters)) == sorted(expected)
    assert all(chapters.count(chapter) >= 2 for chapter in expected)


def _no_bias_correction(theta, grad, m, v, t, lr, beta1, beta2, eps):
    m, v = beta1 * m + (1 - beta1) * grad, beta2 * v + (1 - beta2) * grad**2
    return theta - lr * m / (v.sqrt() + eps), m, v


def _in_place_reparameterize(mu, logvar, eps):
    return mu.add_(torch.exp(logvar / 2) * eps)


def _not_written(*args):
    raise NotImplementedError


# planted wrong answers: (exercise, wrong function, what the verdict must say)
WRONG = [
    ("ch6.gaussian_kl", tutorial_kl, "wrong values"),
    (
        "ch6.gaussian_kl",
        lambda mu, lv: 0.5 * (mu**2 + lv.exp() - 1 - lv),
        "has shape (2, 3), but should have shape (2,)",
    ),  # fmt: skip
    ("ch6.reparameterize", lambda mu, lv, eps: mu + lv.exp() * eps, "wrong values"),
    ("ch6.reparameterize", _in_place_reparameterize, "changed its input tensors in place"),
    ("ch3.entropy", lambda p: -(p * p.log()).sum(), "non-finite values"),
    ("A.log_sum_exp", lambda x: x.exp().sum().log(), "non-finite values"),
    (
        "A.multinomial_log_pmf",
        lambda x, p: torch.tensor(two_factorial_multinomial_pmf(x, p)).log(),
        "wrong values",
    ),  # fmt: skip
    ("ch2.gaussian_mle", lambda x: (x.mean(0), x.var(0)), "value 2 of the result has wrong values"),
    ("ch4.adam_step", _no_bias_correction, "value 1 of the result has wrong values"),
    ("ch4.momentum_step", lambda theta, g, b, lr, mu: theta - lr * g, "returned 1 value(s)"),
    (
        "ch7.bits_per_char",
        lambda logits, t: torch.nn.functional.cross_entropy(logits, t).item(),
        "wrong values",
    ),  # fmt: skip
    ("ch1.categorical_inverse_cdf", lambda p, u: u * 0.0, "should be integer"),
    ("ch0.bits_per_dim", lambda nll, d: nll / (d - d), "raised ZeroDivisionError"),
    ("ch0.image_log_likelihood", _not_written, "not implemented yet"),
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
    expected = EXERCISES["ch7.bits_per_char"].reference(*EXERCISES["ch7.bits_per_char"].fixed[0])
    assert not check("ch7.bits_per_char", lambda logits, t: 0.0, seed=0)
    out = capsys.readouterr().out
    assert "1442" not in out and "1443" not in out and f"{expected:.3g}" not in out
    assert "1000.0" in out  # the failing input is shown
    # nor by how much a wrong answer is off, which would give a scalar answer away
    assert not check("ch0.bits_per_dim", lambda nll, d: 2 * nll / (d * math.log(2)), seed=0)
    out = capsys.readouterr().out
    assert "has wrong values." in out and "difference" not in out


def test_a_vector_returned_as_a_list_is_one_result():
    def as_list(x, k):
        return (torch.bincount(x, minlength=k).double() / len(x)).tolist()

    assert check("ch2.categorical_mle", as_list, seed=0)


def test_fresh_inputs_each_call_and_repeatable_with_a_seed(capsys):
    seen = []

    def spy(nll, d):
        seen.append((nll, d))
        return nll / (d * math.log(2))

    check("ch0.bits_per_dim", spy, cases=3, seed=5)
    check("ch0.bits_per_dim", spy, cases=3, seed=5)
    check("ch0.bits_per_dim", spy, cases=3)
    assert seen[:3] == seen[3:6] and seen[6:] != seen[:3]


def test_check_refuses_bad_arguments():
    with pytest.raises(TypeError, match="student_function must be the function you wrote"):
        check("ch6.gaussian_kl", 3.0)
    with pytest.raises(ValueError, match="'ch6.kl' is not an exercise; the exercises are ch0"):
        check("ch6.kl", tutorial_kl)
    with pytest.raises(ValueError, match="cases must be a positive int"):
        check("ch6.gaussian_kl", tutorial_kl, cases=0)


@pytest.mark.parametrize("stem", NOTEBOOK_STEMS)
def test_every_chapter_has_a_well_formed_quiz(stem):
    questions = quiz(stem)
    assert len(questions) >= 3
    for question in questions:
        assert question["type"] == "multiple_choice" and question["question"]
        assert sum(answer["correct"] for answer in question["answers"]) == 1
        assert all(answer["answer"] and answer["feedback"] for answer in question["answers"])


def test_an_unknown_quiz_is_named():
    with pytest.raises(ValueError, match="chapter '09_diffusion' has no quiz; the quizzes are 00"):
        quiz("09_diffusion")
