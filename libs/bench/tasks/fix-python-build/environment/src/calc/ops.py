from .util import clamp


def scaled_sum(values, factor):
    """Sum of values times factor, limited to [0, 100]."""
    total = 0
    for v in values:
        total += v * factor
    return clamp(total, 0, 100)


def mean(values):
    return sum(values) / len(values)
