"""Plausible wrong answers per lesson, one module each (``WRONG_ANSWERS``), run by ``tests/test_wrong_answers.py``."""
