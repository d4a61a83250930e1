"""Plot helpers shared by the notebooks (they run in this folder, so
`from plotting import log_axis` finds this file)."""

from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter


def log_axis(axis):
    """Log scale ticks at 1, 2, 5 x 10^k, labelled as plain numbers."""
    axis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())
