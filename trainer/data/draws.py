"""Random numbers of one training item, a pure function of ``(seed, epoch, index)``.

Every item's window start and augmentation must follow from the run's seed, the
epoch and the item's index alone: then any number of DataLoader workers, and a
run resumed from a checkpoint, see exactly the same batches, whatever global RNG
state any process holds.

Each item therefore gets its own short SplitMix64 stream, seeded with a hash of
``(seed, epoch, index)`` (the same finaliser applied three times). SplitMix64 is
the generator of Java's ``SplittableRandom``; its outputs pass BigCrush, and an
item takes only four draws (start, two shifts, flip). Seeding ``numpy.random.default_rng((seed, epoch,
index))`` per item would do the same job, but building that generator costs about
as much as reading the item's window from the page cache.
"""

from __future__ import annotations

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # SplitMix64's increment: 2^64 / golden ratio, odd


def mix64(value: int) -> int:
    """SplitMix64's output function: a well-mixed 64-bit hash of ``value`` (any int)."""
    z = value & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class ItemDraws:
    """The stream of random numbers of one item: ``integer`` and ``uniform`` draws, in order.

    Two objects made from the same ``(seed, epoch, index)`` give the same draws; any
    difference in the three gives an unrelated stream.
    """

    __slots__ = ("state",)

    def __init__(self, seed: int, epoch: int, index: int) -> None:
        if min(seed, epoch, index) < 0:
            raise ValueError(f"seed, epoch and index must be >= 0, got {(seed, epoch, index)}")
        self.state = mix64(mix64(mix64(seed + _GOLDEN) + epoch) + index)

    def word(self) -> int:
        """The next uniform 64-bit integer (one SplitMix64 step)."""
        self.state = (self.state + _GOLDEN) & _MASK64
        return mix64(self.state)

    def integer(self, low: int, high: int) -> int:
        """Uniform in ``[low, high]``, both included (modulo bias below ``2**-40`` for any
        range under a million values)."""
        if high < low:
            raise ValueError(f"empty range [{low}, {high}]")
        return low + self.word() % (high - low + 1)

    def uniform(self) -> float:
        """Uniform in ``[0, 1)`` with 53 random bits, like ``numpy``'s ``random()``."""
        return (self.word() >> 11) * (1.0 / (1 << 53))
