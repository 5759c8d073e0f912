"""Questions asked of any fit: comparison and refits (``compare``), simulation-based
calibration (``calibration``) and the classic point fits (``baselines``).

Imports ``bayescale.results`` and below.
"""
