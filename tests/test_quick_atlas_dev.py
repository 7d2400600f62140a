"""The quick atlas's fourth part: the local learning coefficient's calibration, the stagewise development of a
linear network and the Fourier features of modular addition (issue 20), run through the CLI on their own store
(the other parts run the rest; the modules spread over the suite's two workers). Each quick verdict is the one
the README reports, a second run skips everything, and each verdict is re-decided from the store."""

from __future__ import annotations

from test_quick_atlas import DEVELOPMENT, quick_atlas_part

quick_atlas, test_every_quick_verdict_is_the_one_reported_and_a_second_run_skips, \
    test_quick_verdict_is_redecided_from_the_store = quick_atlas_part(DEVELOPMENT, "atlas-dev")
