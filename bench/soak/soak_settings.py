"""Settings for the soak's worker, beat and simulator processes: production settings, with the
recovery delays shortened to fit a time-scaled run (a call lasts tens of milliseconds, so waiting
30 s to re-dial a lost dial job or 120 s to question a silent call would only make the run long).
"""
from config.settings import *  # noqa: F401,F403

REDIAL_ADMITTED_AFTER_SECONDS = 3
STALE_CALL_CHECK_SECONDS = 4
ANALYSIS_WAIT_SECONDS = 2
