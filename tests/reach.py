"""How many examples of a fuzz property got past validation to the output checks.

A fuzz property that ends ``except InputError: return`` passes even if every input is rejected.
Each such property counts its examples in a :class:`Reach`, and the test asserts afterwards
that a share of them reached the output checks. The floors (10%) sit far below the shares
seen (about 20–45% of 150 examples), so a random run does not fail by chance, while a
validation that rejects everything fails at once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Reach:
    tried: int = 0
    reached: int = 0

    def check(self, min_share: float) -> None:
        assert self.tried > 0, "the property never ran"
        share = self.reached / self.tried
        assert share >= min_share, (
            f"only {self.reached} of {self.tried} examples ({share:.0%}) reached the output checks; "
            f"expected at least {min_share:.0%}: the strategy or the validation rejects too much"
        )
