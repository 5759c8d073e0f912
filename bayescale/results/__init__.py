"""Loading results files: :func:`bayescale.load` dispatches through the registry of families.

Imports ``bayescale.model`` and below.
"""
