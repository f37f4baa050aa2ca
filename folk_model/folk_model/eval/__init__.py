"""Evaluation: ScanNet-style instance AP (``ap.py``) and ``folk-eval``."""
