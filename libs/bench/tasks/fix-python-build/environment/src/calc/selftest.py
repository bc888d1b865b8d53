from calc.ops import mean, scaled_sum

assert scaled_sum([1, 2, 3], 2) == 12
assert scaled_sum([100, 1], 1) == 100
assert mean([2, 4]) == 3
print("selftest ok")
