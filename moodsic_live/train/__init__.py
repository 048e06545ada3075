"""Training and export of learned experts (optional extra [train]: torch, transformers)."""
