"""domain.approval: the question an approver sees, answers as lines and MLflow tags."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modelrelease.domain.approval import (
    APPROVALS_TAG,
    Answer,
    Decision,
    Gate,
    OnTimeout,
    Question,
    approval_tags,
    needs_asking,
)


def question(step: int = 1, steps: int = 2, on_timeout: OnTimeout = OnTimeout.ROLLBACK,
             judged: tuple[str, ...] = ("p95 12.0ms vs 11.8ms", "errors 0 of 150")
             ) -> Question:
    return Question("prod/iris", "7", "abc123", step, steps, 10, timedelta(minutes=90),
                    on_timeout, judged)


def test_the_question_says_what_each_answer_does() -> None:
    text = question().markdown()
    assert text.splitlines()[0] == "### Approve step 1/2 of `prod/iris` version 7?"
    assert ("The canary serves **10%** of live traffic and passed the step's checks:\n\n"
            "- p95 12.0ms vs 11.8ms\n- errors 0 of 150") in text
    assert "- **approve**: go on to step 2" in text
    assert "- **reject**: roll back now (your comment is the reason)" in text
    assert "- no answer within 1h30m: the release rolls back" in text
    assert "Release `abc123`." in text


@pytest.mark.parametrize(("asked", "said"), [
    pytest.param(question(step=2), "- **approve**: go on to promotion", id="last-step"),
    pytest.param(question(on_timeout=OnTimeout.CONTINUE),
                 "no answer within 1h30m: the release goes on as if approved", id="continue"),
    pytest.param(question(judged=()), "passed the step's checks.", id="no-verdict-text"),
])
def test_the_question_follows_the_step_and_gate(asked: Question, said: str) -> None:
    assert said in asked.markdown()


def test_each_step_of_a_release_is_its_own_question() -> None:
    assert question(step=1).key == "approval-abc123-step-1"
    assert question(step=2).key != question(step=1).key


@pytest.mark.parametrize(("answer", "line"), [
    pytest.param(Answer(Decision.APPROVE, "alice", " looks fine "),
                 "step 2 approved by alice: looks fine", id="approved"),
    pytest.param(Answer(Decision.REJECT, "bob", ""), "step 2 rejected by bob", id="rejected"),
    pytest.param(Answer(Decision.REJECT, "bob", "drift\n\n on  de"),
                 "step 2 rejected by bob: drift on de", id="comment-on-one-line"),
    pytest.param(Answer(Decision.APPROVE), "step 2 approved by someone", id="nameless"),
    pytest.param(Answer(None), "step 2: no answer within 45m", id="timed-out"),
    pytest.param(Answer(None, stopped_by="ana@laptop"),
                 "step 2: no decision, the release was aborted by ana@laptop", id="stopped"),
])
def test_answer_lines(answer: Answer, line: str) -> None:
    assert answer.line(2, timedelta(minutes=45)) == line


def test_answers_become_one_mlflow_tag() -> None:
    assert approval_tags([]) == {}
    tags = approval_tags([(1, Answer(Decision.APPROVE, "alice", "ok")),
                          (2, Answer(Decision.REJECT, "bob", "drift"))])
    assert tags == {APPROVALS_TAG: "step 1 approved by alice: ok; step 2 rejected by bob: drift"}


def test_a_long_comment_is_cut_to_fit_an_mlflow_tag() -> None:
    (value,) = approval_tags([(1, Answer(Decision.APPROVE, "alice", "x" * 9000))]).values()
    assert len(value) == 5000 and value.endswith("…")


@pytest.mark.parametrize(("gates", "drill", "first"), [
    pytest.param([None, None], False, None, id="no-gates"),
    pytest.param([None, Gate()], False, 2, id="second-step"),
    pytest.param([Gate(), Gate()], False, 1, id="first-of-two"),
    pytest.param([Gate()], True, None, id="a-drill-asks-nobody"),
])
def test_needs_asking(gates: list[Gate | None], drill: bool, first: int | None) -> None:
    assert needs_asking(gates, drill=drill) == first


def test_a_shadow_steps_question_says_the_canary_had_copies_not_users() -> None:
    asked = Question("prod/iris", "7", "abc123", 1, 2, 0, timedelta(minutes=90),
                     OnTimeout.ROLLBACK, ("shadow on 300 copies: within the checks",), 100)
    assert ("The canary was sent copies of **100%** of live requests (users saw none of its "
            "answers) and passed the step's checks:\n\n- shadow on 300 copies") in asked.markdown()
