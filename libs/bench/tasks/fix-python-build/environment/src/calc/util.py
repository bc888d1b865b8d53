def clip(value, low, high):
    """Limits value to [low, high]."""
    return max(low, min(high, value))
