"""The per-clip scoring path: a shard job (videos + prepared scorers), the ledger that skips
finished work, the queue that batches clips per scorer, outcomes, runs and their report."""
