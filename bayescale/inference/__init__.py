"""NUTS and what judges its draws: backends and the compile cache (``sampling``), sampler
diagnostics (``diagnostics``), results trees and their atomic write (``trees``), intervals.

It takes a PyMC model and returns an ``xarray.DataTree``; it knows nothing of bayescale's
models. Imports only ``bayescale.data`` and below.
"""
