"""The results folder's figures: which are drawn, and the first of them by a second process.

:func:`figure_makers` names the figures of a fit's results folder, each with the function
that draws it: the view of the model's family (:data:`VIEWS`), the checks and the others.

``bayescale fit`` starts a :class:`FigureWorker` once its model is built (``python -m
bayescale.report.drawing``): on the machine's other core it imports matplotlib and the plots
(1.3 s) while the command imports PyMC and compiles, which use one core. Once the fit is
saved (``posterior.nc`` in the staged results folder) the worker is asked for the first figure
of the family's view (``law.png``, or ``isoflop.png``): it loads the saved fit, draws the
figure into the same folder and answers with its name and the warnings raised while drawing,
which the command issues as its own. Meanwhile the command writes the summary, the targets,
the other figures and the report. On the 245 Chinchilla runs this takes the results folder
from about 4 s to about 3 s (``benchmarks/RESULTS.md``).

Nothing depends on the worker: where there is one core, the worker cannot start, fails or
dies, the command draws the figure itself (the same figure, byte for byte: it is computed
from the saved draws with fixed seeds), and only time is lost. The worker reads one request
and exits; the command kills it when it ends, and on Linux the worker dies with the command
(``prctl``), so a killed command leaves none drawing into its folder. Requests and answers are
single lines of JSON on its standard input and output.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bayescale.data.warn import warn

__all__ = ["figure_makers", "VIEWS", "FigureWorker", "save_figure", "main"]

#: Seconds the command waits for the worker's answer before drawing the figures itself.
ANSWER_TIMEOUT = 120.0
#: The environment variable that gives the worker the command's process id.
PARENT_VARIABLE = "BAYESCALE_FIGURE_WORKER_PARENT"
_PR_SET_PDEATHSIG = 1


def save_figure(figure, path) -> None:
    """Write ``figure`` as the results folder's PNGs are written, and close it."""
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def _law_view(fit, budgets, prob) -> dict:
    """The law against compute, and N*, D* where the model allocates them."""
    from bayescale.report import plots

    figures = {"law.png": lambda: plots.plot_law(fit, budgets, prob=prob).figure}
    if fit.model.has_optimum:
        figures["optimal.png"] = lambda: plots.plot_optimal(fit, budgets, prob=prob).figure
    return figures


def _isoflop_view(fit, budgets, prob) -> dict:
    """The budgets' parabolas and the line of their optima."""
    from bayescale.report.isoflop_plot import plot_isoflop

    return {"isoflop.png": lambda: plot_isoflop(fit, budgets or None, prob=prob)}


#: The report's main figures of each view a family names (``Family.report_view``): the
#: function of (fit, budgets, prob) that names them, each with the function that draws it.
VIEWS = {"law": _law_view, "isoflop": _isoflop_view}


def figure_makers(fit, budgets, prob, ranks: bool) -> dict[str, Callable]:
    """Every figure of the results folder, by file name, with the function that draws it (and
    imports matplotlib), in the report's order: the model's own view (its family's
    ``report_view``, :data:`VIEWS`), the checks, the chains' rank plots with ``ranks``, the
    offsets and the group multiplier where the model has them."""
    from bayescale.report import plots

    figures = VIEWS[fit.model.report_view](fit, budgets, prob)
    figures["checks.png"] = lambda: plots.plot_checks(fit, prob=prob)
    if ranks:
        figures["ranks.png"] = lambda: plots.plot_ranks(fit)
    if fit.hyperparameter_offsets:
        figures["offsets.png"] = lambda: plots.plot_offsets(fit, prob=prob)
    if fit.model.groups is not None:
        figures["multiplier.png"] = lambda: plots.plot_multiplier(fit, budgets,
                                                                  prob=prob).figure
    return figures


class FigureWorker:
    """A second process that draws figures of a saved fit (see the module).

    ``FigureWorker.start()`` returns None where the machine has one core or the process
    cannot start. :meth:`request` sends the one request; :meth:`answer` returns the figures'
    names (or None: the worker failed, the caller draws them) after issuing the warnings the
    worker caught. :meth:`close` ends it (also as a context manager).
    """

    def __init__(self, process: subprocess.Popen) -> None:
        self._process = process
        self._sent = False

    @classmethod
    def start(cls) -> FigureWorker | None:
        if (os.cpu_count() or 1) < 2:
            return None
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "bayescale.report.drawing"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                env=os.environ | {"MPLBACKEND": "Agg", PARENT_VARIABLE: str(os.getpid())})
        except OSError:
            return None
        return cls(process)

    def request(self, posterior, folder, *, names: Sequence[str], budgets: Sequence[float],
                prob: float) -> bool:
        """Ask for the figures ``names`` (of :func:`figure_makers`)
        of the fit saved at ``posterior``, drawn into ``folder``; False where the worker is
        gone (the caller draws them)."""
        line = json.dumps({"posterior": str(posterior), "folder": str(folder),
                           "names": list(names), "budgets": [float(b) for b in budgets],
                           "prob": float(prob)})
        try:
            self._process.stdin.write(line + "\n")
            self._process.stdin.flush()
        except (OSError, ValueError):
            return False
        self._sent = True
        return True

    def answer(self) -> list[str] | None:
        """The names of the figures the worker wrote, once it has; None where it failed (its
        error is not the user's: the caller draws the figures and meets it there if real)."""
        if not self._sent:
            return None
        try:
            out, _ = self._process.communicate(timeout=ANSWER_TIMEOUT)
            reply = json.loads(out.strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, OSError, ValueError, IndexError):
            self.close()
            return None
        if not isinstance(reply, dict) or not isinstance(reply.get("figures"), list):
            return None  # an error ({"error": ...}), or not the worker's answer
        for module, name, message in reply.get("warnings", []):
            warn(str(message), _category(str(module), str(name)))
        return [str(name) for name in reply["figures"]]

    def close(self) -> None:
        """End the worker now (killed where it has not ended: whatever it was drawing is not
        wanted), and its pipes."""
        process = self._process
        if process.poll() is None:
            process.kill()
        process.wait()
        for pipe in (process.stdin, process.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:  # a broken pipe of a killed worker
                pass

    def __enter__(self) -> FigureWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _category(module: str, name: str) -> type[Warning]:
    """The warning class ``module.name`` where that module is imported here and holds a
    Warning of that name (the package's own, Python's), else UserWarning."""
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) and issubclass(found, Warning) else UserWarning


def draw(request: Mapping) -> dict:
    """Draw the figures ``request["names"]`` of the fit saved at ``request["posterior"]``
    into ``request["folder"]``; the reply: their names and the warnings caught."""
    from bayescale.results.io import load

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = load(request["posterior"])
        makers = figure_makers(fit, list(request["budgets"]), float(request["prob"]), False)
        for name in request["names"]:
            save_figure(makers[name](), Path(request["folder"]) / name)
    return {"figures": list(request["names"]),
            "warnings": [[w.category.__module__, w.category.__qualname__, str(w.message)]
                         for w in caught]}


def _die_with_parent() -> bool:
    """Have Linux kill this process when the command that started it dies (``prctl``
    ``PR_SET_PDEATHSIG``), so that a killed command leaves no worker drawing into its staged
    folder; False where the command is already gone."""
    parent = int(os.environ.get(PARENT_VARIABLE, "0"))
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (AttributeError, OSError):
            pass
    return not parent or os.getppid() == parent


def main() -> int:
    """The worker: import what drawing needs, read one request, draw, answer, exit."""
    if not _die_with_parent():
        return 0
    try:
        import matplotlib

        matplotlib.use("Agg")
        import bayescale.report.plots  # noqa: F401  (the imports, before the request comes)
        import bayescale.results.io  # noqa: F401

        line = sys.stdin.readline()
        if not line.strip():
            return 0  # the command ended without asking
        try:
            reply = draw(json.loads(line))
        except Exception as err:  # reported to the command, which draws the figures itself
            reply = {"error": f"{type(err).__name__}: {err}"}
        print(json.dumps(reply), flush=True)
    except KeyboardInterrupt:  # Ctrl-C reaches the command's whole process group
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
