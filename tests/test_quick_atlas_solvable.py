"""The quick atlas's third part: the solvable models and the three limits of issue 19, run through the CLI on
their own store (tests/test_quick_atlas.py and tests/test_quick_atlas_coarse.py run the rest; the modules spread
over the suite's two workers). Each quick verdict is the one the README reports, a second run skips everything,
and each verdict is re-decided from the store."""

from __future__ import annotations

from test_quick_atlas import SOLVABLE, quick_atlas_part

quick_atlas, test_every_quick_verdict_is_the_one_reported_and_a_second_run_skips, \
    test_quick_verdict_is_redecided_from_the_store = quick_atlas_part(SOLVABLE, "atlas-solvable")
