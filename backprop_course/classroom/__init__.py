"""What an instructor runs: release, grade, progress, mutants.

``backprop_course.exercises`` is what a learner imports (``check``, ``hint``,
the registry and each lesson's checks); this package sits on top of it and
never the other way round. The ``backprop-course`` command (``cli.py``)
calls into both.
"""
