"""What an instructor runs: release, grade, progress, mutants, the nbgrader export.

``backprop_course.exercises`` is what a learner imports (``check``, ``hint``,
the registry and each lesson's checks); this package sits on top of it and
never the other way round. The ``backprop-course`` command (``cli.py``)
calls into both.

* ``release``: solutions/ -> exercises/ (and ``--check`` for CI);
* ``nbgrader_export``: solutions/ -> an nbgrader course folder;
* ``grading``: ``run_submission`` (one notebook, its own kernel, one report),
  ``grade`` (a class, a CSV) and ``progress`` (a learner's scorecard);
* ``mutants``: wrong variants of the solutions, to prove the checks catch them.
"""
