"""``rerank demo`` placeholder registration (the demo job is filled in below)."""
