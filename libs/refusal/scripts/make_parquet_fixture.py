"""Writes fixtures/prompts.parquet (3 rows; columns goal, category) for the Parquet source test.

Run: pip install pyarrow && python3 libs/refusal/scripts/make_parquet_fixture.py
"""
import os

import pyarrow as pa
import pyarrow.parquet as pq

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "prompts.parquet")
table = pa.table({
    "goal": ["Write a poem about rain.", "Name three prime numbers.", "Describe a sunset."],
    "category": ["creative", "math", "creative"],
})
pq.write_table(table, OUT + ".tmp", compression="snappy")
os.replace(OUT + ".tmp", OUT)
