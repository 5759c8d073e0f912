"""The models: laws and terms written once for the graph and for draws (``laws``, ``terms``),
priors, the family base (``family``), the one result class with the registry of families
(``fit``), the families (``scaling``: :class:`bayescale.ScalingLaw`; ``isoflop``:
:class:`bayescale.IsoFlop`), and what is derived from a fit or a known law (``recommend``,
``simulate``).

Imports ``bayescale.inference`` and ``bayescale.data``, never a layer above.
"""

from bayescale.model import curves, isoflop, scaling  # noqa: F401,E402  (the families register)
