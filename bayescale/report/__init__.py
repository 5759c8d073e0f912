"""What people read: plots, the answer at target budgets and the results folder (``answer``),
recipes and the command line (``cli``).

The top layer: it may import every other layer.
"""
