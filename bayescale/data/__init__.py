"""Run tables: canonical columns and validation (``runs``), readers of files and training logs
(``readers``), learning curves and seed replicates (``curves``), and the bundled datasets.

The bottom layer: it imports nothing else of bayescale.
"""
