"""The models: laws and terms written once for the graph and for draws (``laws``, ``terms``),
priors, the family base (``family``), the one result class (``fit``), the registry of
families (``registry``), the families (``scaling``: :class:`bayescale.ScalingLaw`; ``isoflop``:
:class:`bayescale.IsoFlop`), and what is derived from a fit or a known law (``recommend``,
``simulate``).

The families register themselves when their modules are imported;
:func:`bayescale.model.registry.families` imports every module here first.

Imports ``bayescale.inference`` and ``bayescale.data``, never a layer above.
"""
