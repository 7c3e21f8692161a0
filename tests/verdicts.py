"""What the lesson test files mean by "the check caught this wrong answer"."""
from backprop_course.exercises import Verdict


def assert_caught(verdict: Verdict, label: str, needle: str) -> None:
    """Failed, by the learner's code (not a crash of the checker), and the
    message the learner sees names the mistake (``needle``, any case)."""
    assert not verdict.passed, f"{label} passed {verdict.exercise}"
    assert verdict.kind != "internal", verdict.render()
    text = verdict.render()
    assert needle.lower() in text.lower(), f"{label}: hint missing {needle!r}:\n{text}"
